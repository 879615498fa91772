#!/usr/bin/env node
// A reverse MCP server (official SDK, over tools/ws-client-transport.mjs)
// with the tools the MCP conformance suite's tools-call-* scenarios call
// (test_simple_text, test_image_content, test_audio_content,
// test_embedded_resource, test_multiple_content_types, test_error_handling,
// test_tool_with_logging, test_tool_with_progress).  Not run by prove (the
// suite is not a dependency); to check the endpoint by hand:
//
//   node t/interop/conformance-tools-server.mjs --url ws://127.0.0.1:PORT/ws \
//        --name s2 --token t2 &
//   npx -y @modelcontextprotocol/conformance@0.1.13 server \
//       --url http://localhost:PORT/mcp/s2 --scenario tools-call-with-progress
//
// (0.1.13: the last release that runs on Node 20.)
import { parseArgs } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { ReverseWebSocketTransport } from '../../tools/ws-client-transport.mjs';

const { values: opt } = parseArgs({ options: {
  url: { type: 'string' },
  name: { type: 'string', default: 's2' },
  token: { type: 'string', default: 't2' },
}});

// a 1x1 PNG and an empty WAV
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8'
          + 'z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
const WAV = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEARKwAAIhYAQACABAAZGF0YQAAAAA=';

const text = (t) => ({ type: 'text', text: t });
const image = { type: 'image', data: PNG, mimeType: 'image/png' };
const resource = { type: 'resource', resource: {
  uri: 'test://embedded-resource', mimeType: 'text/plain',
  text: 'This is an embedded resource content.' } };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const s = new McpServer({ name: 'conformance-tools', version: '1.0.0' },
                        { capabilities: { logging: {} } });
const tool = (name, fn) => s.registerTool(name, { description: name }, fn);

tool('test_simple_text', async () => ({
  content: [text('This is a simple text response for testing.')] }));
tool('test_image_content', async () => ({ content: [image] }));
tool('test_audio_content', async () => ({
  content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] }));
tool('test_embedded_resource', async () => ({ content: [resource] }));
tool('test_multiple_content_types', async () => ({
  content: [text('Multiple content types test:'), image, resource] }));
tool('test_error_handling', async () => ({ isError: true,
  content: [text('This tool intentionally returns an error for testing')] }));
tool('test_tool_with_logging', async (extra) => {
  for (const m of ['Tool execution started', 'Tool processing data',
                   'Tool execution completed']) {
    await extra.sendNotification({ method: 'notifications/message',
                                   params: { level: 'info', data: m } });
    await sleep(50);
  }
  return { content: [text('Tool with logging executed successfully')] };
});
tool('test_tool_with_progress', async (extra) => {
  const token = extra._meta?.progressToken;
  for (const progress of [0, 50, 100]) {
    if (token !== undefined) {
      await extra.sendNotification({ method: 'notifications/progress',
        params: { progressToken: token, progress, total: 100,
                  message: `at ${progress}` } });
    }
    await sleep(50);
  }
  return { content: [text(String(token))] };
});

await s.connect(new ReverseWebSocketTransport({
  url: opt.url, name: opt.name, token: opt.token }));
console.log(`connected to ${opt.url} as '${opt.name}'`);
