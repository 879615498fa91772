#!/usr/bin/env node
// The reference gateway of `make bench`: what a user would write instead of
// the nginx module, on the official MCP TypeScript SDK + `ws`, with the same
// features the benchmark uses:
//
//  - reverse MCP servers dial a WebSocket (GET /ws on --ws-port, the seed's
//    wire contract: X-MCP-Server-Name or ?server_name=, Authorization: Bearer
//    or ?token=, one JSON-RPC message per frame, newline-terminated or not);
//    the gateway is the MCP client on each socket (an SDK `Client`:
//    initialize, notifications/initialized, tools/list page by page, re-list
//    on notifications/tools/list_changed), then registers the server; a
//    WebSocket ping every 30 s, like the module's default;
//  - agents use Streamable HTTP on POST /mcp (--http-port): the SDK's
//    StreamableHTTPServerTransport in stateful mode (Mcp-Session-Id, one SDK
//    `Server` per session, JSON responses), tools/list returns every
//    server's tools as <server>__<tool>, tools/call is forwarded to the
//    server's socket with `client.callTool` and the result relayed;
//  - GET /status: {"servers":N,"tools":N,"rss":B,"heap_used":B}
//    (?gc=1 runs a full GC first when node runs with --expose-gc).
//
//   node --expose-gc bench/peer/gateway.mjs --http-port 28510 --ws-port 28511 \
//        --prefix b --servers 10000 --token bench-token [--stateless]
//
// --stateless: the SDK's documented stateless pattern instead (a new Server
// and transport per request, no session); not used by `make bench`, as it
// measured slower here (about 400 calls/s at c1 against 1,000 stateful).
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  CallToolRequestSchema, ListToolsRequestSchema, ToolListChangedNotificationSchema,
  McpError, ErrorCode, isInitializeRequest,
} from '@modelcontextprotocol/sdk/types.js';

const { values: opt } = parseArgs({ options: {
  'http-port': { type: 'string', default: '28510' },
  'ws-port': { type: 'string', default: '28511' },
  prefix: { type: 'string', default: 'b' },
  servers: { type: 'string', default: '100' },
  token: { type: 'string', default: 'bench-token' },
  separator: { type: 'string', default: '__' },
  'max-seconds': { type: 'string', default: '900' },
  stateless: { type: 'boolean', default: false },
}});

const SEP = opt.separator;
const allowed = new Set();
for (let i = 0; i < Number(opt.servers); i++) allowed.add(`${opt.prefix}${i}`);

// ---- the registry: server name -> { client, tools, ws } ----
const registry = new Map();
let aggregated = null;          // cached tools/list result, rebuilt on change

function aggregate() {
  if (aggregated) return aggregated;
  const out = [];
  for (const name of [...registry.keys()].sort()) {
    for (const t of registry.get(name).tools) out.push({ ...t, name: `${name}${SEP}${t.name}` });
  }
  aggregated = out;
  return out;
}

// The SDK transport on the gateway's side of a reverse server's WebSocket.
class WsServerSideTransport {
  constructor(ws) { this.ws = ws; }
  async start() {
    this.ws.on('message', (data) => {
      for (const line of data.toString().split('\n')) {
        if (!line.trim()) continue;
        let msg;
        try { msg = JSON.parse(line); } catch (e) { this.onerror?.(e); continue; }
        this.onmessage?.(msg);
      }
    });
    this.ws.on('close', () => this.onclose?.());
    this.ws.on('error', (e) => this.onerror?.(e));
  }
  async send(message) {
    await new Promise((resolve, reject) =>
      this.ws.send(JSON.stringify(message), (err) => (err ? reject(err) : resolve())));
  }
  async close() { this.ws.close(1000, 'bye'); }
}

async function listAll(client) {
  const tools = [];
  let cursor;
  do {
    const r = await client.listTools(cursor ? { cursor } : undefined);
    tools.push(...r.tools);
    cursor = r.nextCursor;
  } while (cursor);
  return tools;
}

const wsServer = http.createServer((req, res) => { res.writeHead(426); res.end(); });
const wss = new WebSocketServer({ noServer: true, maxPayload: 64 << 20 });

wsServer.on('upgrade', (req, socket, head) => {
  const u = new URL(req.url, 'http://x');
  const refuse = (code, why) => {
    socket.end(`HTTP/1.1 ${code} ${why}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  };
  if (u.pathname !== '/ws') return refuse(404, 'Not Found');
  const name = req.headers['x-mcp-server-name'] || u.searchParams.get('server_name');
  const auth = req.headers.authorization;
  const token = auth ? (auth.startsWith('Bearer ') ? auth.slice(7) : null) : u.searchParams.get('token');
  if (!name) return refuse(400, 'Bad Request');
  if (token !== opt.token) return refuse(401, 'Unauthorized');
  if (!allowed.has(name)) return refuse(403, 'Forbidden');
  wss.handleUpgrade(req, socket, head, (ws) => onReverseServer(ws, name));
});

async function onReverseServer(ws, name) {
  const client = new Client({ name: 'peer-gateway', version: '1.0.0' }, { capabilities: {} });
  const entry = { client, tools: [], ws };
  let alive = true;
  const pinger = setInterval(() => {
    if (!alive) return ws.terminate();
    alive = false;
    ws.ping();
  }, 30000);
  ws.on('pong', () => { alive = true; });
  ws.on('close', () => {
    clearInterval(pinger);
    if (registry.get(name) === entry) { registry.delete(name); aggregated = null; }
  });
  try {
    await client.connect(new WsServerSideTransport(ws));    // initialize + initialized
    entry.tools = await listAll(client);
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      try { entry.tools = await listAll(client); aggregated = null; } catch { /* keep the old */ }
    });
    const old = registry.get(name);
    registry.set(name, entry);
    aggregated = null;
    if (old) old.ws.close(1008, 'replaced');
  } catch (e) {
    ws.close(1002, String(e.message).slice(0, 100));
  }
}

// ---- the agents' side: Streamable HTTP ----
function newSessionServer() {
  const server = new Server({ name: 'peer-gateway', version: '1.0.0' },
                            { capabilities: { tools: { listChanged: true } } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: aggregate() }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const full = request.params.name;
    const i = full.indexOf(SEP);
    const entry = i > 0 ? registry.get(full.slice(0, i)) : undefined;
    if (!entry) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${full}`);
    return entry.client.callTool({ name: full.slice(i + SEP.length),
                                   arguments: request.params.arguments });
  });
  return server;
}

const sessions = new Map();     // session id -> transport

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

const httpServer = http.createServer(async (req, res) => {
  try {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/status') {
      if (u.searchParams.get('gc') && global.gc) { global.gc(); global.gc(); }
      let tools = 0;
      for (const e of registry.values()) tools += e.tools.length;
      const m = process.memoryUsage();
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ servers: registry.size, tools, rss: m.rss,
                               heap_used: m.heapUsed, sessions: sessions.size }));
      return;
    }
    if (u.pathname !== '/mcp') { res.writeHead(404); res.end(); return; }
    const sid = opt.stateless ? undefined : req.headers['mcp-session-id'];
    let body;
    if (req.method === 'POST') {
      const text = await readBody(req);
      try { body = JSON.parse(text); } catch {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}');
        return;
      }
    }
    let transport = sid ? sessions.get(sid) : undefined;
    if (opt.stateless) {
      // the SDK's documented stateless pattern: a Server and a transport per request
      transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined,
                                                      enableJsonResponse: true });
      res.on('close', () => { transport.close(); });
      await newSessionServer().connect(transport);
    } else if (!transport) {
      if (sid || req.method !== 'POST' || !isInitializeRequest(body)) {
        res.writeHead(sid ? 404 : 400, { 'Content-Type': 'application/json' });
        res.end('{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"No valid session"}}');
        return;
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: true,
        onsessioninitialized: (id) => { sessions.set(id, transport); },
      });
      transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
      await newSessionServer().connect(transport);
    }
    await transport.handleRequest(req, res, body);
  } catch (e) {
    if (!res.headersSent) { res.writeHead(500); }
    res.end();
  }
});

httpServer.keepAliveTimeout = 75000;
httpServer.headersTimeout = 76000;
httpServer.listen({ host: '127.0.0.1', port: Number(opt['http-port']), backlog: 4096 });
wsServer.listen({ host: '127.0.0.1', port: Number(opt['ws-port']), backlog: 4096 });

// bounded: stops by itself
setTimeout(() => process.exit(0), Number(opt['max-seconds']) * 1000).unref();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
