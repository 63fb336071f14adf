import { ManaAiError } from '@mana-ai/core';
import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

/** The HTTP status for a mana-ai error code: 4xx for caller mistakes, 500 for everything else. */
export function statusForErrorCode(code: string): number {
  if (/_(NOT_FOUND|UNKNOWN_[A-Z_]+)$/.test(code)) return 404;
  if (/_(UNAUTHORIZED|UNAUTHENTICATED)$/.test(code)) return 401;
  if (/_(FORBIDDEN|SCOPE_VIOLATION)$/.test(code)) return 403;
  if (/_CONFLICT$/.test(code)) return 409;
  if (/_(INVALID|VALIDATION|BAD_REQUEST)(_|$)/.test(code)) return 400;
  return 500;
}

function isFastifyClientError(error: unknown): error is FastifyError {
  const status = (error as FastifyError | undefined)?.statusCode;
  return typeof status === 'number' && status >= 400 && status < 500;
}

async function errorHandlerPlugin(app: FastifyInstance): Promise<void> {
  app.setErrorHandler(async (error, request, reply) => {
    if (ManaAiError.isInstance(error)) {
      const status = statusForErrorCode(error.code);
      if (status >= 500) request.log.error({ code: error.code, err: error }, 'request failed');
      // Package error messages are safe by rule, but a 5xx still says nothing about internals.
      return reply.code(status).send({ error: status >= 500 ? 'internal error' : error.message, code: error.code });
    }
    if (isFastifyClientError(error)) {
      return reply.code(error.statusCode ?? 400).send({ error: error.message, code: error.code ?? 'RUNNER_BAD_REQUEST' });
    }
    request.log.error({ err: error }, 'request failed');
    return reply.code(500).send({ error: 'internal error', code: 'RUNNER_INTERNAL' });
  });
  app.setNotFoundHandler(async (_request, reply) => reply.code(404).send({ error: 'not found', code: 'RUNNER_NOT_FOUND' }));
}

/** One error handler for the whole app: JSON `{error, code}`, never internals in a 5xx. */
export default fp(errorHandlerPlugin, { name: 'mana-ai-error-handler', fastify: '5.x' });
