import type { FastifyRequest } from 'fastify';
import { BadInputError } from '../../errors/index.js';

/** JSON schema of a query parameter, as the routes declare them. */
export type QueryProperty = Record<string, unknown>;

/** Parameters every read route accepts besides its own: the bearer token for EventSource. */
const ALWAYS_ALLOWED = ['access_token'];

/**
 * A querystring schema that also rejects parameters the route does not know (Fastify's validator
 * would silently drop them, so a misspelt filter would return everything), naming the parameter.
 */
export function querySchema(properties: Record<string, QueryProperty>) {
  const allowed = new Set([...Object.keys(properties), ...ALWAYS_ALLOWED]);
  return {
    schema: {
      type: 'object',
      properties: {
        ...properties,
        access_token: { type: 'string', description: 'Bearer token (for EventSource)' },
      },
    },
    async preValidation(request: FastifyRequest) {
      const query = (request.query ?? {}) as Record<string, unknown>;
      for (const name of Object.keys(query)) {
        if (!allowed.has(name)) {
          throw new BadInputError(
            `unknown query parameter "${name.slice(0, 40)}" (expected ${[...allowed].filter((a) => a !== 'access_token').join(', ') || 'none'})`,
          );
        }
      }
    },
  };
}

/** A text filter: exact match, 1 to 200 characters. */
export const textFilter = (description: string): QueryProperty => ({
  type: 'string',
  minLength: 1,
  maxLength: 200,
  description,
});

export const timeFilter = (description: string): QueryProperty => ({
  type: 'string',
  format: 'date-time',
  description,
});

export function optionalDate(value: string | undefined): Date | undefined {
  return value === undefined ? undefined : new Date(value);
}
