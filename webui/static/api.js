// The API over the connect protocol with JSON: unary calls are a POST of the request
// message; server-streaming calls (GetStatus) send and receive enveloped messages.
// When the API asks for a token (api.auth_tokens_file), a call answered unauthenticated
// asks the user for one, keeps it in sessionStorage (this tab, until it is closed), sends
// it as Authorization: Bearer and is made again.

export class APIError extends Error {
  constructor(code, message) {
    super(message ? `${code}: ${message}` : code);
    this.code = code;
  }
}

const base = ''; // same origin: the UI server proxies /obelisk.v1.* to the API
const TOKEN_KEY = 'obelisk.apiToken';

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

let asking = null; // the prompt on screen: every call refused meanwhile waits for it

// askToken shows the token prompt (once, however many calls were refused) and resolves
// when a token has been entered.
function askToken(reason) {
  if (!asking) asking = tokenDialog(reason).finally(() => { asking = null; });
  return asking;
}

function tokenDialog(reason) {
  return new Promise((resolve) => {
    const dialog = document.createElement('dialog');
    dialog.id = 'token-dialog';
    const refused = sessionStorage.getItem(TOKEN_KEY) !== null;
    dialog.innerHTML = `<form method="dialog" id="token-form">
      <h2>API token</h2>
      <p class="muted"></p>
      <label>Token <input type="password" name="token" id="token-input" autocomplete="off" required></label>
      <button type="submit" id="token-submit">Use this token</button>
    </form>`;
    dialog.querySelector('p').textContent = refused
      ? `The API refused the token: ${reason}`
      : 'The API asks for a token (kept in this tab until it is closed).';
    dialog.addEventListener('cancel', (e) => e.preventDefault()); // nothing works without one
    dialog.querySelector('form').addEventListener('submit', () => {
      sessionStorage.setItem(TOKEN_KEY, dialog.querySelector('#token-input').value.trim());
      dialog.remove();
      resolve();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// authenticated makes a call, asking for a token and making it again while the API
// answers unauthenticated.
async function authenticated(send) {
  for (;;) {
    try {
      return await send();
    } catch (err) {
      if (!(err instanceof APIError) || err.code !== 'unauthenticated') throw err;
      await askToken(err.message);
    }
  }
}

export function call(service, method, request = {}) {
  return authenticated(() => callOnce(service, method, request));
}

async function callOnce(service, method, request) {
  const resp = await fetch(`${base}/obelisk.v1.${service}/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Connect-Protocol-Version': '1', ...authHeaders() },
    body: JSON.stringify(request),
  });
  const text = await resp.text();
  let body = {};
  try { body = text ? JSON.parse(text) : {}; } catch { body = { message: text }; }
  if (!resp.ok) throw new APIError(body.code || `http ${resp.status}`, body.message || '');
  return body;
}

// stream calls a server-streaming method and returns every message it sent.
export function stream(service, method, request = {}) {
  return authenticated(() => streamOnce(service, method, request));
}

async function streamOnce(service, method, request) {
  const payload = new TextEncoder().encode(JSON.stringify(request));
  const frame = new Uint8Array(5 + payload.length);
  new DataView(frame.buffer).setUint32(1, payload.length);
  frame.set(payload, 5);
  const resp = await fetch(`${base}/obelisk.v1.${service}/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/connect+json', 'Connect-Protocol-Version': '1', ...authHeaders() },
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
