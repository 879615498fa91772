#!/usr/bin/env node
// A reverse MCP server (official SDK, over tools/ws-client-transport.mjs)
// with the fixtures of the MCP conformance suite's server scenarios:
//   tools      test_simple_text, test_image_content, test_audio_content,
//              test_embedded_resource, test_multiple_content_types,
//              test_error_handling, test_tool_with_logging,
//              test_tool_with_progress, and test_sampling,
//              test_elicitation, test_elicitation_sep1034_defaults,
//              test_elicitation_sep1330_enums (they ask the client, which
//              needs the gateway to relay server-to-client requests);
//   resources  test://static-text, test://static-binary, the template
//              test://template/{id}/data, test://watched-resource
//              (resources/subscribe and unsubscribe answer {});
//   prompts    test_simple_prompt, test_prompt_with_arguments {arg1, arg2}
//              (arg1 completes: completion/complete),
//              test_prompt_with_embedded_resource {resourceUri},
//              test_prompt_with_image.
// t/011-conformance.t runs the suite against /mcp/<name> with it; by hand:
//
//   node t/interop/conformance-tools-server.mjs --url ws://127.0.0.1:PORT/ws \
//        --name s2 --token t2 &
//   npx conformance server --url http://localhost:PORT/mcp/s2 \
//       --scenario prompts-get-with-args
//
// (@modelcontextprotocol/conformance 0.1.13: the last release that runs on
// Node 20.)
import { parseArgs } from 'node:util';
import { McpServer, ResourceTemplate }
  from '@modelcontextprotocol/sdk/server/mcp.js';
import { completable } from '@modelcontextprotocol/sdk/server/completable.js';
import { SubscribeRequestSchema, UnsubscribeRequestSchema,
         CreateMessageResultSchema, ElicitResultSchema }
  from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
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
                        { capabilities: { logging: {},
                                          resources: { subscribe: true } } });
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


// tools that ask the client (through the gateway) during the call
const ask = (extra, method, params, schema) =>
  extra.sendRequest({ method, params }, schema);
s.registerTool('test_sampling', {
  description: 'asks the client for an LLM completion',
  inputSchema: { prompt: z.string() },
}, async ({ prompt }, extra) => {
  const r = await ask(extra, 'sampling/createMessage', {
    messages: [{ role: 'user', content: text(prompt) }], maxTokens: 100 },
    CreateMessageResultSchema);
  return { content: [text(`LLM response: ${r.content?.text ?? ''}`)] };
});
const elicit = async (extra, message, requestedSchema) => {
  const r = await ask(extra, 'elicitation/create',
                      { message, requestedSchema }, ElicitResultSchema);
  return { content: [text(`User response: action=${r.action}, content=`
                          + JSON.stringify(r.content ?? {}))] };
};
s.registerTool('test_elicitation', {
  description: 'asks the user for input',
  inputSchema: { message: z.string() },
}, async ({ message }, extra) => elicit(extra, message, {
  type: 'object', required: ['username', 'email'], properties: {
    username: { type: 'string', description: "User's response" },
    email: { type: 'string', description: "User's email address" } } }));
tool('test_elicitation_sep1034_defaults', async (extra) =>
  elicit(extra, 'Defaults for every primitive type', {
    type: 'object', properties: {
      name: { type: 'string', default: 'John Doe' },
      age: { type: 'integer', default: 30 },
      score: { type: 'number', default: 95.5 },
      status: { type: 'string', enum: ['active', 'inactive', 'pending'],
                default: 'active' },
      verified: { type: 'boolean', default: true } } }));
tool('test_elicitation_sep1330_enums', async (extra) =>
  elicit(extra, 'Every enum variant', {
    type: 'object', properties: {
      untitledSingle: { type: 'string', enum: ['a', 'b', 'c'] },
      titledSingle: { type: 'string', oneOf: [
        { const: 'a', title: 'Option A' }, { const: 'b', title: 'Option B' }] },
      legacyEnum: { type: 'string', enum: ['a', 'b'],
                    enumNames: ['Option A', 'Option B'] },
      untitledMulti: { type: 'array', items: { type: 'string',
                                               enum: ['a', 'b'] } },
      titledMulti: { type: 'array', items: { anyOf: [
        { const: 'a', title: 'Option A' },
        { const: 'b', title: 'Option B' }] } } } }));

// resources
s.registerResource('static-text', 'test://static-text',
  { description: 'a static text resource', mimeType: 'text/plain' },
  async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain',
    text: 'This is the content of the static text resource.' }] }));
s.registerResource('static-binary', 'test://static-binary',
  { description: 'a static binary resource (PNG)', mimeType: 'image/png' },
  async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'image/png',
                                 blob: PNG }] }));
s.registerResource('template',
  new ResourceTemplate('test://template/{id}/data', { list: undefined }),
  { description: 'data by id', mimeType: 'application/json' },
  async (uri, { id }) => ({ contents: [{ uri: uri.href,
    mimeType: 'application/json', text: JSON.stringify({
      id, templateTest: true, data: `Data for ID: ${id}` }) }] }));
s.registerResource('watched-resource', 'test://watched-resource',
  { description: 'a resource to subscribe to', mimeType: 'text/plain' },
  async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain',
                                 text: 'watched' }] }));
const subscriptions = new Set();
s.server.setRequestHandler(SubscribeRequestSchema, async (req) => {
  subscriptions.add(req.params.uri);
  return {};
});
s.server.setRequestHandler(UnsubscribeRequestSchema, async (req) => {
  subscriptions.delete(req.params.uri);
  return {};
});

// prompts
const user = (content) => ({ role: 'user', content });
s.registerPrompt('test_simple_prompt',
  { description: 'a simple prompt without arguments' },
  async () => ({ messages: [
    user(text('This is a simple prompt for testing.'))] }));
s.registerPrompt('test_prompt_with_arguments', {
  description: 'a prompt with arguments',
  argsSchema: {
    arg1: completable(z.string().describe('First test argument'),
      (value) => ['paris', 'park', 'party'].filter((v) => v.startsWith(value))),
    arg2: z.string().describe('Second test argument'),
  },
}, async ({ arg1, arg2 }) => ({ messages: [
  user(text(`Prompt with arguments: arg1='${arg1}', arg2='${arg2}'`))] }));
s.registerPrompt('test_prompt_with_embedded_resource', {
  description: 'a prompt with an embedded resource',
  argsSchema: { resourceUri: z.string().describe('URI of the resource') },
}, async ({ resourceUri }) => ({ messages: [
  user({ type: 'resource', resource: { uri: resourceUri,
    mimeType: 'text/plain', text: 'Embedded resource content for testing.' } }),
  user(text('Please process the embedded resource above.'))] }));
s.registerPrompt('test_prompt_with_image',
  { description: 'a prompt with an image' },
  async () => ({ messages: [user(image),
                            user(text('Please analyze the image above.'))] }));

await s.connect(new ReverseWebSocketTransport({
  url: opt.url, name: opt.name, token: opt.token }));
console.log(`connected to ${opt.url} as '${opt.name}'`);
