#!/usr/bin/env node
// Interop helper for t/008-endpoint.t: the official MCP TypeScript SDK's
// Client over StreamableHTTPClientTransport, talking to the gateway's MCP
// endpoint (reverse_mcp_endpoint), which forwards to a reverse server (the
// demo server, tools/demo-reverse-server.mjs, connected as --server).
//
//   node t/interop/sdk-client.mjs --url http://127.0.0.1:PORT/mcp --server s1
//
// Against <url> (every server, names "<server>__<tool>") and
// <url>/<server> (that server, names unchanged) it lists the tools, calls
// add and echo (echo with a progress callback, so the reply is an SSE
// stream), an unknown tool, ping and logging/setLevel, then ends the
// session (DELETE) and checks a request on it fails.  Prints one JSON
// object (the observations) on stdout; exit 0 when every check passed,
// 1 otherwise (the failed checks are in "failures").
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from
  '@modelcontextprotocol/sdk/client/streamableHttp.js';

const { values: opt } = parseArgs({ options: {
  url: { type: 'string' },
  server: { type: 'string', default: 's1' },
  sep: { type: 'string', default: '__' },
}});

const out = { failures: [] };

function check(cond, what) {
  if (!cond) out.failures.push(what);
}

function text(result) {
  return (result?.content || []).filter((c) => c.type === 'text')
    .map((c) => c.text).join('');
}

async function session(url, prefix, key) {
  const seen = {};
  out[key] = seen;
  const client = new Client({ name: 'sdk-client-interop', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);

  seen.sessionId = transport.sessionId;
  seen.protocolVersion = transport.protocolVersion;
  seen.serverInfo = client.getServerVersion();
  seen.capabilities = client.getServerCapabilities();
  check(/^[0-9a-f]{32}$/.test(transport.sessionId || ''),
        `${key}: a 32 hex digit session id`);
  check(seen.serverInfo?.name === 'ngx_http_reverse_mcp_module',
        `${key}: serverInfo.name`);
  check(seen.capabilities?.tools, `${key}: tools capability`);

  const list = await client.listTools();
  seen.tools = list.tools.map((t) => t.name);
  const add = `${prefix}add`;
  const echo = `${prefix}echo`;
  check(seen.tools.includes(add) && seen.tools.includes(echo),
        `${key}: ${add} and ${echo} listed`);
  const addTool = list.tools.find((t) => t.name === add);
  check(addTool?.inputSchema?.type === 'object', `${key}: add inputSchema`);

  const sum = await client.callTool({ name: add, arguments: { a: 2, b: 40 } });
  seen.add = text(sum);
  seen.addStructured = sum.structuredContent;
  check(seen.add === '42', `${key}: add 2 + 40 = 42`);

  // a progress callback makes the SDK send _meta.progressToken: the
  // gateway answers with an SSE stream
  let progress = 0;
  const echoed = await client.callTool(
    { name: echo, arguments: { text: `héllo ${key} "quoted" \\ \n line` } },
    undefined, { onprogress: () => { progress++; }, timeout: 10000 });
  seen.echo = text(echoed);
  seen.progressEvents = progress;
  check(seen.echo === `héllo ${key} "quoted" \\ \n line`,
        `${key}: echo round trip (UTF-8, quotes, newline)`);

  try {
    await client.callTool({ name: `${prefix}no_such_tool`, arguments: {} });
    seen.unknown = 'no error';
  } catch (e) {
    seen.unknown = { code: e.code, message: e.message };
  }
  check(seen.unknown?.code === -32602
        && /Unknown tool/.test(seen.unknown?.message || ''),
        `${key}: unknown tool is -32602`);

  seen.ping = await client.ping();
  check(seen.ping && Object.keys(seen.ping).length === 0, `${key}: ping {}`);
  seen.setLevel = await client.setLoggingLevel('warning');

  await transport.terminateSession();
  seen.terminated = transport.sessionId === undefined;

  // the session is gone: a new request on it fails (404)
  const stale = new StreamableHTTPClientTransport(new URL(url),
                                                 { sessionId: seen.sessionId });
  try {
    await stale.send({ jsonrpc: '2.0', id: 99, method: 'ping' });
    seen.afterDelete = 'accepted';
  } catch (e) {
    seen.afterDelete = String(e.message || e);
  }
  check(/404|Session not found/.test(seen.afterDelete),
        `${key}: the session is gone after DELETE`);

  await client.close();
}

try {
  await session(opt.url, `${opt.server}${opt.sep}`, 'aggregate');
  await session(`${opt.url}/${opt.server}`, '', 'server');
} catch (e) {
  out.failures.push(`exception: ${e.stack || e}`);
}

console.log(JSON.stringify(out));
process.exit(out.failures.length ? 1 : 0);
