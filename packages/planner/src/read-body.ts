/** What {@link readBodyUpTo} read: the whole body, or how many bytes arrived before it was cut at the cap. */
export type BodyRead = { text: string } | { text: undefined; receivedBytes: number };

/**
 * Reads `response`'s body as UTF-8 text, holding at most `maxBytes` of it: a longer body (by its
 * `content-length` or by what arrives) is cancelled where it crosses the cap and yields no text but
 * the bytes that arrived (`maxBytes` when the declared length alone exceeded it), so a provider
 * sending 50 MB costs one chunk past the cap, not 50 MB. Read errors (including the fetch's abort
 * signal) propagate.
 */
export async function readBodyUpTo(response: Response, maxBytes: number): Promise<BodyRead> {
  const body = response.body;
  if (body === null) return { text: '' };
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    body.cancel().catch(() => {});
    return { text: undefined, receivedBytes: maxBytes };
  }
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let received = 0;
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { text: text + decoder.decode() };
    received += value.byteLength;
    if (received > maxBytes) {
      // Not awaited: a peer that never acknowledges must not hold the caller; the fetch is aborted too.
      reader.cancel().catch(() => {});
      return { text: undefined, receivedBytes: received };
    }
    text += decoder.decode(value, { stream: true });
  }
}
