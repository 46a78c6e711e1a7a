// The reading page's calls to the reader-study API (docs/reader-study-api.md). The session
// cookie goes with every call (same origin); errors come back as ApiError with a kind that the
// page turns into a message a reader understands.

export class ApiError extends Error {
  /** kind: 'network' (no reply), 'http' (a reply with an error status). */
  constructor(kind, message, { status = null, rule = null, breast = null, view = null } = {}) {
    super(message);
    this.kind = kind;
    this.status = status;
    this.rule = rule;
    this.breast = breast;
    this.view = view;
  }
}

async function call(path, { method = 'GET', body = undefined, timeoutMs = 20000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
      cache: 'no-store',
    });
  } catch (error) {
    throw new ApiError('network', 'The study server cannot be reached.');
  } finally {
    clearTimeout(timer);
  }
  if (response.ok) return response;
  let detail = `The server answered ${response.status}.`;
  let extra = {};
  try {
    const payload = await response.json();
    if (payload && typeof payload.detail === 'string') detail = payload.detail;
    extra = { rule: payload.rule ?? null, breast: payload.breast ?? null, view: payload.view ?? null };
  } catch {
    // not JSON: keep the status line
  }
  throw new ApiError('http', detail, { status: response.status, ...extra });
}

export async function getState() {
  return (await call('/api/reader/state')).json();
}

export async function openReading(reading) {
  return (await call(`/api/readings/${reading}/open`, { method: 'POST', body: {} })).json();
}

export async function submitReading(reading, body) {
  return (await call(`/api/readings/${reading}/submit`, { method: 'POST', body })).json();
}

export async function sendEvent(reading, kind) {
  await call(`/api/readings/${reading}/events`, {
    method: 'POST',
    body: { kind, client_time: new Date().toISOString() },
  });
}

/** The PNG bytes of a served image (retried a few times: a preload may meet a busy server). */
export async function fetchImageBytes(image, { tries = 3 } = {}) {
  let lastError;
  for (let attempt = 0; attempt < tries; attempt += 1) {
    try {
      return await (await call(image.url, { timeoutMs: 60000 })).arrayBuffer();
    } catch (error) {
      lastError = error;
      if (error.kind === 'http' && error.status < 500) break;
      await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
    }
  }
  throw lastError;
}
