// The demo tools, shared by both demo servers (tools/demo-stdio-server.mjs
// behind reverse-mcp-bridge, tools/demo-reverse-server.mjs dialling in
// itself): echo, add, time, system_info.  Safe: no command runner, no file
// access.
import os from 'node:os';
import { z } from 'zod';

export function registerDemoTools(server) {
  server.registerTool('echo', {
    description: 'Echo the given text back',
    inputSchema: { text: z.string().describe('Text to echo') },
  }, async ({ text }) => ({ content: [{ type: 'text', text }] }));

  server.registerTool('add', {
    description: 'Add two numbers',
    inputSchema: { a: z.number(), b: z.number() },
  }, async ({ a, b }) => ({
    content: [{ type: 'text', text: String(a + b) }],
    structuredContent: { sum: a + b },
  }));

  server.registerTool('time', {
    description: 'Current time on the machine running this server (ISO 8601)',
    inputSchema: {},
  }, async () => ({ content: [{ type: 'text', text: new Date().toISOString() }] }));

  server.registerTool('system_info', {
    description: 'Host name, OS, CPU count and uptime of this machine',
    inputSchema: {},
  }, async () => ({ content: [{ type: 'text', text: JSON.stringify({
    hostname: os.hostname(), platform: os.platform(), release: os.release(),
    cpus: os.cpus().length, uptime_s: Math.round(os.uptime()) }) }] }));

  return server;
}
