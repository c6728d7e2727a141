import type { RedisClient } from '../../bus/redis/connection.js';
import type { DeploymentFacts } from './notification.js';

/**
 * Facts about a deployment remembered from its earlier events: health, validation and
 * `deployment:failed` events do not repeat the environment or the services, but routing by
 * environment and one PagerDuty incident per service need them. `remember` merges (a fact given
 * once stays unless given again).
 */
export interface DeploymentFactsStore {
  remember(deploymentId: string, facts: DeploymentFacts): Promise<void>;
  recall(deploymentId: string): Promise<DeploymentFacts | undefined>;
}

/** Options of {@link RedisDeploymentFactsStore}. */
export interface RedisDeploymentFactsStoreOptions {
  client: RedisClient;
  /** One hash per deployment: `<prefix>:deployment:<id>`. */
  prefix: string;
  /** @defaultValue 604800000 (7 days) */
  ttlMs?: number;
}

/** {@link DeploymentFactsStore} on Redis. */
export class RedisDeploymentFactsStore implements DeploymentFactsStore {
  constructor(private readonly options: RedisDeploymentFactsStoreOptions) {}

  private key(deploymentId: string): string {
    return `${this.options.prefix}:deployment:${deploymentId}`;
  }

  async remember(deploymentId: string, facts: DeploymentFacts): Promise<void> {
    const fields: Record<string, string> = {};
    for (const [name, value] of Object.entries(facts)) {
      if (value !== undefined) fields[name] = Array.isArray(value) ? JSON.stringify(value) : String(value);
    }
    if (Object.keys(fields).length === 0) return;
    const key = this.key(deploymentId);
    await this.options.client
      .pipeline()
      .hset(key, fields)
      .pexpire(key, this.options.ttlMs ?? 7 * 24 * 3_600_000)
      .exec();
  }

  async recall(deploymentId: string): Promise<DeploymentFacts | undefined> {
    const stored = await this.options.client.hgetall(this.key(deploymentId));
    if (Object.keys(stored).length === 0) return undefined;
    const facts: DeploymentFacts = {};
    if (stored.project) facts.project = stored.project;
    if (stored.environment) facts.environment = stored.environment;
    if (stored.version) facts.version = stored.version;
    if (stored.previousVersion) facts.previousVersion = stored.previousVersion;
    if (stored.services) facts.services = JSON.parse(stored.services) as string[];
    return facts;
  }
}

/** {@link DeploymentFactsStore} in this process's memory (one notifier process). */
export class MemoryDeploymentFactsStore implements DeploymentFactsStore {
  private readonly facts = new Map<string, DeploymentFacts>();

  async remember(deploymentId: string, facts: DeploymentFacts): Promise<void> {
    this.facts.set(deploymentId, { ...this.facts.get(deploymentId), ...facts });
  }

  async recall(deploymentId: string): Promise<DeploymentFacts | undefined> {
    const facts = this.facts.get(deploymentId);
    return facts ? { ...facts } : undefined;
  }
}
