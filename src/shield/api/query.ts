import type { FastifyRequest } from 'fastify';
import { BadInputError } from '../../errors/index.js';

/** JSON schema of a query parameter, as the routes declare them. */
export type QueryProperty = Record<string, unknown>;

/**
 * A querystring schema that also rejects parameters the route does not know (Fastify's validator
 * would silently drop them, so a misspelt filter would return everything), naming the parameter.
 */
export function querySchema(properties: Record<string, QueryProperty>) {
  // No `access_token`: a token in the URL ends up in logs and history (the dashboard uses a session cookie).
  const allowed = new Set(Object.keys(properties));
  return {
    schema: { type: 'object', properties },
    async preValidation(request: FastifyRequest) {
      const query = (request.query ?? {}) as Record<string, unknown>;
      for (const name of Object.keys(query)) {
        if (!allowed.has(name)) {
          throw new BadInputError(
            `unknown query parameter "${name.slice(0, 40)}" (expected ${[...allowed].join(', ') || 'none'})`,
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
