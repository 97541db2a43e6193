// The API over the connect protocol with JSON: unary calls are a POST of the request
// message; server-streaming calls (GetStatus) send and receive enveloped messages.

export class APIError extends Error {
  constructor(code, message) {
    super(message ? `${code}: ${message}` : code);
    this.code = code;
  }
}

const base = ''; // same origin: the UI server proxies /obelisk.v1.* to the API

export async function call(service, method, request = {}) {
  const resp = await fetch(`${base}/obelisk.v1.${service}/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Connect-Protocol-Version': '1' },
    body: JSON.stringify(request),
  });
  const text = await resp.text();
  let body = {};
  try { body = text ? JSON.parse(text) : {}; } catch { body = { message: text }; }
  if (!resp.ok) throw new APIError(body.code || `http ${resp.status}`, body.message || '');
  return body;
}

// stream calls a server-streaming method and returns every message it sent.
export async function stream(service, method, request = {}) {
  const payload = new TextEncoder().encode(JSON.stringify(request));
  const frame = new Uint8Array(5 + payload.length);
  new DataView(frame.buffer).setUint32(1, payload.length);
  frame.set(payload, 5);
  const resp = await fetch(`${base}/obelisk.v1.${service}/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/connect+json', 'Connect-Protocol-Version': '1' },
    body: frame,
  });
  const buf = new Uint8Array(await resp.arrayBuffer());
  if (!resp.ok) {
    let body = {};
    try { body = JSON.parse(new TextDecoder().decode(buf)); } catch { /* not JSON */ }
    throw new APIError(body.code || `http ${resp.status}`, body.message || '');
  }
  const messages = [];
  for (let i = 0; i + 5 <= buf.length;) {
    const flags = buf[i];
    const n = new DataView(buf.buffer, buf.byteOffset + i + 1, 4).getUint32(0);
    const msg = JSON.parse(new TextDecoder().decode(buf.subarray(i + 5, i + 5 + n)) || '{}');
    i += 5 + n;
    if (flags & 2) { // end of stream
      if (msg.error) throw new APIError(msg.error.code, msg.error.message || '');
      break;
    }
    messages.push(msg);
  }
  return messages;
}

export const exec = (method, req) => call('ExecutionService', method, req);
export const comp = (method, req) => call('ComponentService', method, req);
export const sched = (method, req) => call('ScheduleService', method, req);

// status returns the current summary of an execution.
export async function status(id) {
  const msgs = await stream('ExecutionService', 'GetStatus', { executionId: id });
  if (!msgs.length) throw new APIError('not_found', `no status for ${id}`);
  return msgs[msgs.length - 1].summary;
}
