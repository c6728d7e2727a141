/**
 * The release ledger: what runs in each (project, environment) — its current version, the
 * deployment that put it there, since when — and every release it had before. The orchestrator
 * writes it in the same transaction as the final state of that deployment, so the ledger, the
 * deployment records and the next deployment's previous version always agree; `materi shield
 * rebuild` recomputes it from the event log.
 *
 * @example
 * const current = await currentRelease(db, 'shop', 'production');
 * // { version: 'v3', deploymentId: 'dep-…', kind: 'deploy', since: 1765…, … }
 *
 * @module
 */

import type { Kysely, Transaction } from 'kysely';
import type { DeploymentEvent } from '../events/index.js';
import { DeploymentStatus } from '../events/index.js';
import { ORCHESTRATOR_SOURCE } from '../events/sources.js';
import type { Database } from '../store/index.js';

/** How a release came to run: a deployment of a new version, or a rollback to an earlier one. */
export type ReleaseKind = 'deploy' | 'rollback';

/** One release of an environment. */
export interface Release {
  project: string;
  environment: string;
  version: string;
  /** The deployment that put this version there (for a rollback: the rollback's deployment). */
  deploymentId: string;
  kind: ReleaseKind;
  triggeredBy: string;
  /** Epoch ms since when it runs. */
  since: number;
  /** Epoch ms when the next release replaced it; absent while it is current. */
  until?: number;
}

type Db = Kysely<Database> | Transaction<Database>;

/** What {@link rebuildLedger} reads of an event (a decoded event, or one of Shield's log). */
export type LedgerEvent = Pick<DeploymentEvent, 'type' | 'deploymentId' | 'source' | 'time' | 'data'>;

/** The release running now in an environment, if anything was ever released there. */
export async function currentRelease(
  db: Db,
  project: string,
  environment: string,
): Promise<Release | undefined> {
  const row = await db
    .selectFrom('orchestrator_ledger')
    .selectAll()
    .where('project', '=', project)
    .where('environment', '=', environment)
    .executeTakeFirst();
  return row ? toRelease(row) : undefined;
}

/** The current release of every environment, by project then environment. */
export async function listEnvironments(db: Db): Promise<Release[]> {
  const rows = await db
    .selectFrom('orchestrator_ledger')
    .selectAll()
    .orderBy('project')
    .orderBy('environment')
    .execute();
  return rows.map(toRelease);
}

/** Every release of an environment (or of every environment of a project), newest first. */
export async function releaseHistory(
  db: Db,
  project: string,
  environment?: string,
  limit = 100,
): Promise<Release[]> {
  let query = db.selectFrom('orchestrator_ledger_history').selectAll().where('project', '=', project);
  if (environment !== undefined) query = query.where('environment', '=', environment);
  const rows = await query.orderBy('since', 'desc').orderBy('id', 'desc').limit(limit).execute();
  return rows.map(toRelease);
}

/**
 * Makes `release` the current release of its environment: the one before it ends (`until`), the
 * new one is added to the history. Call it inside the transaction that ends the deployment.
 */
export async function recordCurrentRelease(db: Db, release: Omit<Release, 'until'>): Promise<void> {
  await db
    .updateTable('orchestrator_ledger_history')
    .set({ until: release.since })
    .where('project', '=', release.project)
    .where('environment', '=', release.environment)
    .where('until', 'is', null)
    .execute();
  await db
    .insertInto('orchestrator_ledger_history')
    .values({ ...columns(release), until: null })
    .execute();
  await db
    .insertInto('orchestrator_ledger')
    .values(columns(release))
    .onConflict((oc) =>
      oc.columns(['project', 'environment']).doUpdateSet({
        version: release.version,
        deployment_id: release.deploymentId,
        kind: release.kind,
        triggered_by: release.triggeredBy,
        since: release.since,
      }),
    )
    .execute();
}

/**
 * Recomputes the ledger from the event log (oldest first), trusting only the orchestrator's
 * events: a `deployment:completed` SUCCESS makes its version current; a `rollback:completed`
 * SUCCESS makes its restored version current (a rollback of a finished release; the rollback
 * during a failed deployment restores what was current anyway). Replaces both tables.
 * Resolves with the number of environments and releases written.
 */
export async function rebuildLedger(
  db: Kysely<Database>,
  events: Iterable<LedgerEvent>,
): Promise<{ environments: number; releases: number }> {
  const started = new Map<string, { kind: ReleaseKind; triggeredBy: string }>();
  /** Who asked for the manual rollback of a deployment (`rollback:initiated`). */
  const rollbackBy = new Map<string, string>();
  const history: Release[] = [];
  const current = new Map<string, Release>();
  const make = (
    event: LedgerEvent,
    version: string,
    kind: ReleaseKind,
    project: string,
    environment: string,
  ) => {
    const key = `${project}\u0000${environment}`;
    const since = event.time.getTime();
    const previous = current.get(key);
    if (previous) previous.until = since;
    const release: Release = {
      project,
      environment,
      version,
      deploymentId: event.deploymentId,
      kind,
      triggeredBy:
        (kind === 'rollback' ? rollbackBy.get(event.deploymentId) : undefined) ||
        started.get(event.deploymentId)?.triggeredBy ||
        '',
      since,
    };
    history.push(release);
    current.set(key, release);
  };
  for (const event of events) {
    if (event.source !== ORCHESTRATOR_SOURCE) continue;
    if (event.type === 'deployment:started') {
      const data = event.data as { kind?: string; triggeredBy?: string };
      started.set(event.deploymentId, {
        kind: data.kind === 'rollback' ? 'rollback' : 'deploy',
        triggeredBy: data.triggeredBy ?? '',
      });
    } else if (event.type === 'deployment:completed') {
      const data = event.data as { status: number; version: string; project: string; environment: string };
      if (data.status !== DeploymentStatus.SUCCESS || !data.project || !data.environment) continue;
      const kind = started.get(event.deploymentId)?.kind ?? 'deploy';
      make(event, data.version, kind, data.project, data.environment);
    } else if (event.type === 'rollback:initiated') {
      const requestedBy = (event.data as { requestedBy?: string }).requestedBy;
      if (requestedBy) rollbackBy.set(event.deploymentId, requestedBy);
    } else if (event.type === 'rollback:completed') {
      const data = event.data as {
        status: number;
        restoredVersion: string;
        project: string;
        environment: string;
      };
      if (data.status !== DeploymentStatus.SUCCESS || !data.restoredVersion || !data.project) continue;
      const key = `${data.project}\u0000${data.environment}`;
      // The rollback of a deployment that failed on its way restores what was current: no change.
      if (current.get(key)?.version === data.restoredVersion) continue;
      make(event, data.restoredVersion, 'rollback', data.project, data.environment);
    }
  }
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('orchestrator_ledger_history').execute();
    await trx.deleteFrom('orchestrator_ledger').execute();
    for (const release of history) {
      await trx
        .insertInto('orchestrator_ledger_history')
        .values({ ...columns(release), until: release.until ?? null })
        .execute();
    }
    for (const release of current.values())
      await trx.insertInto('orchestrator_ledger').values(columns(release)).execute();
  });
  return { environments: current.size, releases: history.length };
}

function columns(release: Omit<Release, 'until'>) {
  return {
    project: release.project,
    environment: release.environment,
    version: release.version,
    deployment_id: release.deploymentId,
    kind: release.kind,
    triggered_by: release.triggeredBy,
    since: release.since,
  };
}

function toRelease(row: {
  project: string;
  environment: string;
  version: string;
  deployment_id: string;
  kind: string;
  triggered_by: string;
  since: number | string | bigint;
  until?: number | string | bigint | null;
}): Release {
  return {
    project: row.project,
    environment: row.environment,
    version: row.version,
    deploymentId: row.deployment_id,
    kind: row.kind === 'rollback' ? 'rollback' : 'deploy',
    triggeredBy: row.triggered_by,
    since: Number(row.since),
    ...(row.until !== undefined && row.until !== null ? { until: Number(row.until) } : {}),
  };
}
