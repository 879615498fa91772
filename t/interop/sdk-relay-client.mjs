#!/usr/bin/env node
// Interop helper for t/014-endpoint-relay.t: the official MCP TypeScript
// SDK's Client (StreamableHTTPClientTransport) with a sampling and an
// elicitation handler, through the gateway's aggregate endpoint, calls the
// tools of t/interop/conformance-tools-server.mjs (the SDK's McpServer,
// connected as a reverse server) that ask the client during the call:
// the gateway relays the server's sampling/createMessage and
// elicitation/create to this client and its answers back.
//
//   node t/interop/sdk-relay-client.mjs --url http://127.0.0.1:PORT/mcp \
//        --server s2
//
// Prints one JSON object (the observations) on stdout; exit 0 when every
// check passed, 1 otherwise (the failed checks are in "failures").
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from
  '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema } from
  '@modelcontextprotocol/sdk/types.js';

const { values: opt } = parseArgs({ options: {
  url: { type: 'string' },
  server: { type: 'string', default: 's2' },
}});

const out = { failures: [], sampling: [], elicitation: [] };

function check(cond, what) {
  if (!cond) out.failures.push(what);
}

function text(result) {
  return (result?.content || []).filter((c) => c.type === 'text')
    .map((c) => c.text).join('');
}

const client = new Client({ name: 'sdk-relay-client', version: '1.0.0' },
                          { capabilities: { sampling: {},
                                            elicitation: {} } });

client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  out.sampling.push(req.params);
  const prompt = req.params.messages?.[0]?.content?.text ?? '';
  return { model: 'sdk-relay-model', role: 'assistant',
           content: { type: 'text', text: `echo: ${prompt}` } };
});

client.setRequestHandler(ElicitRequestSchema, async (req) => {
  out.elicitation.push(req.params);
  return { action: 'accept',
           content: { username: 'ada', email: 'ada@example.com' } };
});

try {
  await client.connect(new StreamableHTTPClientTransport(new URL(opt.url)));

  const s = await client.callTool({ name: `${opt.server}__test_sampling`,
                                    arguments: { prompt: 'hello there' } });
  out.samplingResult = text(s);
  check(out.samplingResult === 'LLM response: echo: hello there',
        `the sampling tool's result carries the client's answer `
        + `(got ${JSON.stringify(out.samplingResult)})`);
  check(out.sampling.length === 1
        && out.sampling[0].messages?.[0]?.content?.text === 'hello there',
        'the sampling handler got the server\'s request');

  const e = await client.callTool({ name: `${opt.server}__test_elicitation`,
                                    arguments: { message: 'who are you?' } });
  out.elicitationResult = text(e);
  check(out.elicitationResult === 'User response: action=accept, content='
        + '{"username":"ada","email":"ada@example.com"}',
        `the elicitation tool's result carries the client's answer `
        + `(got ${JSON.stringify(out.elicitationResult)})`);
  check(out.elicitation.length === 1
        && out.elicitation[0].message === 'who are you?',
        'the elicitation handler got the server\'s request');

  await client.close();
} catch (err) {
  out.failures.push(`exception: ${err?.stack || err}`);
}

process.stdout.write(JSON.stringify(out) + '\n');
process.exit(out.failures.length ? 1 : 0);
