/** A dependency the process needs to do its work, e.g. the event bus: resolves when it answers. */
export type ReadinessCheck = () => Promise<unknown>;

/** The answer of `GET /readyz`: `ok`, or why a check failed (credentials removed). */
export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
}

/** How long one readiness check may take before it counts as failed. @defaultValue 2000 */
export const READINESS_TIMEOUT_MS = 2000;

/**
 * Runs the checks at once, each bounded by `timeoutMs`. A failure is reported by its message with
 * any `user:password@` of a URL masked, so the public `/readyz` never shows a credential.
 */
export async function checkReadiness(
  checks: Record<string, ReadinessCheck>,
  timeoutMs = READINESS_TIMEOUT_MS,
): Promise<Readiness> {
  const results = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([check(), timedOut]);
        return [name, 'ok'] as const;
      } catch (error) {
        return [
          name,
          `failed: ${maskCredentials(error instanceof Error ? error.message : String(error))}`,
        ] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { ready: results.every(([, status]) => status === 'ok'), checks: Object.fromEntries(results) };
}

function maskCredentials(text: string): string {
  return text.replace(/(\w+:\/\/)[^\s/@]*@/g, '$1***@').slice(0, 300);
}
