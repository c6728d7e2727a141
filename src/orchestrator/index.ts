/**
 * The orchestrator: plan files, stage providers, and the durable deployment saga that runs a plan
 * as events on the bus.
 *
 * @module
 */
export { registerOrchestratorRoutes } from './api.js';
export {
  type ActiveFreeze,
  activeFreeze,
  type FreezeOverride,
  type FreezeSettings,
  type FreezeWindow,
  loadFreezeSettings,
  parseFreezeSettings,
} from './freeze.js';
export {
  type EnvironmentIncident,
  INCIDENT_EVENT_TYPES,
  type IncidentRules,
  openIncident,
} from './incidents.js';
export {
  type DeploymentView,
  type DeployRequest,
  ORCHESTRATOR_GROUP,
  Orchestrator,
  type OrchestratorOptions,
} from './orchestrator.js';
export {
  type DeploymentStatusName,
  FINAL_STATUSES,
  GATES,
  type Phase,
  type SagaState,
  stepEventId,
} from './state.js';
