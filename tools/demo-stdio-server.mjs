#!/usr/bin/env node
// The demo stdio MCP server: the official MCP SDK (McpServer over
// StdioServerTransport) with a few safe tools: echo, add, time,
// system_info. No command runner, no file access. It speaks
// newline-delimited JSON-RPC on stdin/stdout, so any stdio MCP client can
// use it; `make run` serves it to the quickstart gateway through
// reverse-mcp-bridge:
//
//   build/reverse-mcp-bridge --url ws://127.0.0.1:9090/ws --name demo \
//       --token demo-token -- node tools/demo-stdio-server.mjs
//
// Logs go to stderr (stdout is the protocol).
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { registerDemoTools } from './demo-tools.mjs';

const server = registerDemoTools(
  new McpServer({ name: 'reverse-mcp-demo-stdio', version: '0.1.0' }));

const transport = new StdioServerTransport();
transport.onclose = () => process.exit(0);
process.stdin.on('end', () => process.exit(0));
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}

await server.connect(transport);
console.error(`reverse-mcp-demo-stdio ${process.pid}: ready on stdio (echo, add, time, system_info)`);
