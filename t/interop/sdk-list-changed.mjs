#!/usr/bin/env node
// Interop helper for t/007-sdk-interop.t: an McpServer of the official MCP
// TypeScript SDK, dialling the gateway through tools/ws-client-transport.mjs,
// whose tool set changes after it has registered.  The SDK itself sends
// notifications/tools/list_changed when a tool is added or removed on a
// connected server.
//
//   node t/interop/sdk-list-changed.mjs --url ws://127.0.0.1:PORT/ws \
//        --name s1 --token t1
//
// Starts with the tool "hello".  SIGUSR1: registerTool("late_tool");
// SIGUSR2: remove it again; SIGTERM: close the WebSocket (1000) and exit.
// Every step is printed on stdout.
import { parseArgs } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { ReverseWebSocketTransport } from '../../tools/ws-client-transport.mjs';

const { values: opt } = parseArgs({ options: {
  url: { type: 'string' },
  name: { type: 'string' },
  token: { type: 'string' },
}});

const server = new McpServer({ name: 'sdk-list-changed', version: '1.0.0' });
server.registerTool('hello', {
  description: 'Say hello',
  inputSchema: { who: z.string() },
}, async ({ who }) => ({ content: [{ type: 'text', text: `hello ${who}` }] }));

const transport = new ReverseWebSocketTransport({
  url: opt.url, name: opt.name, token: opt.token });

let late = null;

process.on('SIGUSR1', () => {
  if (late) return;
  late = server.registerTool('late_tool', {
    description: 'Registered after the gateway listed the tools',
    inputSchema: { n: z.number() },
  }, async ({ n }) => ({ content: [{ type: 'text', text: String(n * 2) }] }));
  console.log('added late_tool');
});

process.on('SIGUSR2', () => {
  if (!late) return;
  late.remove();
  late = null;
  console.log('removed late_tool');
});

process.on('SIGTERM', async () => {
  console.log('closing');
  await server.close();
});

transport.onclose = () => {
  console.log(`disconnected: ${transport.closeCode} ${transport.closeReason}`);
  process.exit(0);
};

try {
  await server.connect(transport);
  console.log(`connected to ${opt.url} as '${opt.name}'`);
} catch (e) {
  console.error(`connect failed: ${e.message}`);
  process.exit(2);
}
