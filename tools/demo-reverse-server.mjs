#!/usr/bin/env node
// The demo reverse MCP server: a few safe tools (echo, add, time,
// system_info; no command runner) served with the official MCP SDK over a
// WebSocket that dials OUT to the gateway's connector.
//
//   node tools/demo-reverse-server.mjs --url ws://127.0.0.1:9090/ws \
//        --name demo --token demo-token [--reconnect] [--ca build/certs/ca.crt]
import { parseArgs } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { registerDemoTools } from './demo-tools.mjs';
import { ReverseWebSocketTransport } from './ws-client-transport.mjs';

const { values: opt } = parseArgs({ options: {
  url: { type: 'string', default: 'ws://127.0.0.1:9090/ws' },
  name: { type: 'string', default: 'demo' },
  token: { type: 'string', default: 'demo-token' },
  ca: { type: 'string' },
  insecure: { type: 'boolean', default: false },
  reconnect: { type: 'boolean', default: false },
  'no-newline': { type: 'boolean', default: false },
  subprotocol: { type: 'string' },
}});

function buildServer() {
  return registerDemoTools(
    new McpServer({ name: 'reverse-mcp-demo', version: '0.1.0' }));
}

async function runOnce() {
  const transport = new ReverseWebSocketTransport({
    url: opt.url, name: opt.name, token: opt.token, caFile: opt.ca,
    insecure: opt.insecure, newline: !opt['no-newline'],
    subprotocol: opt.subprotocol });
  const closed = new Promise((resolve) => { transport.onclose = resolve; });
  const server = buildServer();
  await server.connect(transport);   // starts the transport
  console.log(`connected to ${opt.url} as '${opt.name}'`);
  const origClose = transport.onclose;
  await new Promise((resolve) => {
    transport.onclose = () => { origClose?.(); resolve(); };
  });
  await closed.catch(() => {});
  console.log(`disconnected: ${transport.closeCode} ${transport.closeReason}`);
}

let delay = 500;
for (;;) {
  try {
    await runOnce();
    delay = 500;
  } catch (e) {
    console.error(`connect failed: ${e.message}`);
    if (e.status === 401 || e.status === 403) process.exit(2);
  }
  if (!opt.reconnect) process.exit(0);
  await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
  delay = Math.min(delay * 2, 30000);
}
