/**
 * `source` of every event the orchestrator publishes — `deployment:started|completed|failed`, the
 * gate requests (`*:started`), the stage events, `rollback:*` and `approval:*` — whichever process runs it
 * (`materi up`, `materi worker orchestrator`, `materi deploy --standalone`). Shield lets only
 * events with this source change a deployment's record. Like every envelope field it is what the
 * publisher says, not a proof: who may write to the streams is decided by Redis' ACLs.
 */
export const ORCHESTRATOR_SOURCE = 'materi/orchestrator';
