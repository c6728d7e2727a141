import { describe, expect, it } from 'vitest';
import { PlanInvalidError, parsePlan } from '../../../src/orchestrator/plan/index.js';

/** A local stage whose port, health URL and tcp dependency come from `${API_PORT}`. */
function localPlan(vars: string): string {
  return `project: demo
${vars}
services:
  api:
    health: http://127.0.0.1:\${API_PORT}/health
    dependencies:
      - { name: self, type: tcp, host: 127.0.0.1, port: "\${API_PORT}" }
stages:
  - name: api
    description: API on port \${API_PORT}
    services: [api]
    provider: { type: local, command: [node, api.js, "\${VERSION}", "\${PORT}"], port: "\${API_PORT}" }
`;
}

function issuesOf(text: string, vars?: Record<string, string>): { path: string; message: string }[] {
  try {
    parsePlan(text, 'p.yaml', { vars });
  } catch (error) {
    expect(error).toBeInstanceOf(PlanInvalidError);
    return (error as PlanInvalidError).issues.map(({ path, message }) => ({ path, message }));
  }
  throw new Error('the plan was accepted');
}

describe("a plan's vars", () => {
  it('are the values of ${NAME} when no --var gives one, and numbers become ports', () => {
    const plan = parsePlan(localPlan('vars: { API_PORT: 4701 }'), 'p.yaml', { version: 'v1' });
    expect(plan.services.api!.health).toBe('http://127.0.0.1:4701/health');
    expect(plan.services.api!.dependencies[0]).toMatchObject({ type: 'tcp', port: 4701 });
    expect(plan.stages[0]!.description).toBe('API on port 4701');
    expect(plan.stages[0]!.provider).toMatchObject({
      type: 'local',
      port: 4701,
      command: ['node', 'api.js', '${VERSION}', '${PORT}'],
    });
    expect(plan.references).toEqual([]);
    expect(plan).not.toHaveProperty('vars');
  });

  it('are overridden by --var', () => {
    const plan = parsePlan(localPlan('vars: { API_PORT: "4701" }'), 'p.yaml', { vars: { API_PORT: '5801' } });
    expect(plan.services.api!.health).toBe('http://127.0.0.1:5801/health');
    expect(plan.stages[0]!.provider).toMatchObject({ port: 5801 });
  });

  it('leave a port that no var sets as an error naming it', () => {
    expect(issuesOf(localPlan(''))).toEqual([
      { path: 'services.api.dependencies[0].port', message: 'expected a number, got "${API_PORT}"' },
      { path: 'stages[0].provider.port', message: 'expected a number, got "${API_PORT}"' },
    ]);
  });

  it('reject names materi sets itself, bad names and values that are not strings or numbers', () => {
    expect(issuesOf(localPlan('vars: { API_PORT: 1, VERSION: v9 }'))).toEqual([
      { path: 'vars.VERSION', message: 'VERSION is set by materi and cannot be a var' },
    ]);
    expect(issuesOf(localPlan('vars: { API_PORT: 1, api-port: 2 }'))).toEqual([
      { path: 'vars.api-port', message: 'a var name must match [A-Za-z_][A-Za-z0-9_]*' },
    ]);
    expect(issuesOf(localPlan('vars: { API_PORT: [1] }'))).toContainEqual({
      path: 'vars.API_PORT',
      message: 'must be a string or a number',
    });
  });

  it('do not turn other strings into ports', () => {
    expect(issuesOf(localPlan('vars: { API_PORT: "80a" }'))).toContainEqual({
      path: 'stages[0].provider.port',
      message: 'expected a number, got "80a"',
    });
    expect(issuesOf(localPlan('vars: { API_PORT: 70000 }'))).toContainEqual({
      path: 'stages[0].provider.port',
      message: 'must be at most 65535',
    });
  });
});
