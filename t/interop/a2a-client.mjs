// The official A2A JavaScript SDK (@a2a-js/sdk, v1.x with its v0.3
// compatibility layer) as a client of the gateway's A2A location.
//
//   node a2a-client.mjs SDK_DIR BASE_URL send|stream TEXT [CONTEXT_ID]
//   node a2a-client.mjs SDK_DIR BASE_URL get|cancel TASK_ID
//
// Prints one JSON line per result or stream event, with task states by
// name ({"kind":"task"|"status"|"artifact"|"message", ...}); exits 1 on an
// error (printed as {"error": message}).

const [sdkDir, base, cmd, arg, contextId] = process.argv.slice(2);

const sdk = await import(`${sdkDir}/dist/client/index.js`);
const core = await import(`${sdkDir}/dist/index.js`);
const { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory,
        DefaultAgentCardResolver } = sdk;

const factory = new ClientFactory(ClientFactoryOptions.createFrom(
    ClientFactoryOptions.default, {
        transports: [new JsonRpcTransportFactory({
            legacyCompat: { enabled: true } })],
        cardResolver: new DefaultAgentCardResolver({
            legacyCompat: { enabled: true } }),
    }));

const state = (s) => core.TaskState[s?.state] ?? String(s?.state);
const text = (parts) => (parts || []).map(
    (p) => p.content?.$case === 'text' ? p.content.value : '').join('');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

function task(t) {
    return { kind: 'task', id: t.id, contextId: t.contextId,
             state: state(t.status), status: text(t.status?.message?.parts),
             artifacts: (t.artifacts || []).map((a) => text(a.parts)),
             history: (t.history || []).map((m) => text(m.parts)),
             metadata: t.metadata };
}

function event(e) {
    const p = e.payload;
    switch (p?.$case) {
    case 'task': return task(p.value);
    case 'message': return { kind: 'message', text: text(p.value.parts) };
    case 'statusUpdate':
        return { kind: 'status', taskId: p.value.taskId,
                 contextId: p.value.contextId,
                 state: state(p.value.status),
                 text: text(p.value.status?.message?.parts) };
    case 'artifactUpdate':
        return { kind: 'artifact', taskId: p.value.taskId,
                 text: text(p.value.artifact?.parts) };
    default: return { kind: 'unknown', raw: e };
    }
}

try {
    const client = await factory.createFromUrl(base);
    const card = await factory.agentCardResolver?.resolve?.(base)
                 .catch(() => undefined);
    if (card && cmd === 'card') { out(card); process.exit(0); }

    const message = {
        messageId: crypto.randomUUID(), contextId: contextId || '',
        taskId: '', role: core.Role.ROLE_USER,
        parts: [{ content: { $case: 'text', value: arg }, metadata: undefined,
                  filename: '', mediaType: '' }],
        metadata: undefined, extensions: [], referenceTaskIds: [],
    };
    const params = { tenant: '', message, configuration: undefined,
                     metadata: undefined };

    if (cmd === 'send') {
        const r = await client.sendMessage(params);
        out('id' in r && 'status' in r ? task(r)
            : { kind: 'message', text: text(r.parts) });
    } else if (cmd === 'stream') {
        for await (const e of client.sendMessageStream(params)) {
            out(event(e));
        }
    } else if (cmd === 'get') {
        out(task(await client.getTask({ tenant: '', id: arg })));
    } else if (cmd === 'cancel') {
        out(task(await client.cancelTask({ tenant: '', id: arg,
                                           metadata: undefined })));
    } else {
        throw new Error(`unknown command ${cmd}`);
    }
} catch (e) {
    out({ error: String(e?.message ?? e) });
    process.exit(1);
}
