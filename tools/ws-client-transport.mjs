// A client-side WebSocket transport for the official MCP TypeScript SDK,
// dialling the gateway the way the seed's Go reverse server does: the
// server name and token in the query AND in the X-MCP-Server-Name and
// Authorization headers, one JSON-RPC message per text frame, optionally
// newline-terminated.  Used by the demo server and the interop tests.
import WebSocket from 'ws';
import fs from 'node:fs';

export class ReverseWebSocketTransport {
  constructor({ url, name, token, newline = true, subprotocol = null,
                caFile = null, insecure = false, queryToken = true }) {
    const u = new URL(url);
    u.searchParams.set('server_name', name);
    if (token && queryToken) u.searchParams.set('token', token);
    this.url = u.toString();
    this.headers = { 'X-MCP-Server-Name': name };
    if (token) this.headers.Authorization = `Bearer ${token}`;
    this.newline = newline;
    this.subprotocol = subprotocol;
    this.tls = {};
    if (caFile) this.tls.ca = fs.readFileSync(caFile);
    if (insecure) this.tls.rejectUnauthorized = false;
  }

  start() {
    return new Promise((resolve, reject) => {
      const protocols = this.subprotocol ? [this.subprotocol] : undefined;
      const ws = new WebSocket(this.url, protocols,
                               { headers: this.headers, ...this.tls });
      this.ws = ws;
      ws.on('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => {
          const err = new Error(`HTTP ${res.statusCode}: ${body.trim()}`);
          err.status = res.statusCode;
          reject(err);
        });
      });
      ws.on('open', () => resolve());
      ws.on('error', (e) => { reject(e); this.onerror?.(e); });
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.onclose?.();
      });
      // one message per tick: the SDK handles notifications in a microtask
      // and responses synchronously, so keep them in order
      let chain = Promise.resolve();
      ws.on('message', (data) => {
        chain = chain.then(() => new Promise((r) => setImmediate(() => {
          for (const line of data.toString().split('\n')) {
            if (!line.trim()) continue;
            try { this.onmessage?.(JSON.parse(line)); }
            catch (e) { this.onerror?.(e); }
          }
          r();
        })));
      });
    });
  }

  async send(message) {
    const text = JSON.stringify(message) + (this.newline ? '\n' : '');
    await new Promise((resolve, reject) =>
      this.ws.send(text, (err) => (err ? reject(err) : resolve())));
  }

  async close() {
    this.ws?.close(1000, 'bye');
  }
}
