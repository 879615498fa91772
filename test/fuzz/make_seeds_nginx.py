#!/usr/bin/env python3
"""Seed corpora of the nginx-linked fuzz targets (test/fuzz/corpus/<target>/).

The messages are the ones the tests exchange: the LLM replies of
t/lib/Test/Nginx/FakeLLM.pm, the reverse server's answers of t/004 and the
seed Go client, the MCP requests of t/010-013, the chat bodies of t/020-023.
Run from anywhere: python3 test/fuzz/make_seeds_nginx.py
"""
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def js(o):
    return json.dumps(o, separators=(',', ':'))


# --- llm: byte 0 = provider | stream<<1 | status<<2 | code<<5, byte 1 = chunk

def llm(name, anthropic, stream, status, chunk, body, code=0):
    b0 = (1 if anthropic else 0) | (2 if stream else 0) | (status << 2) | (code << 5)
    put('llm', name, bytes([b0, chunk]) + body.encode())


def openai_events(text, calls):
    ch = lambda delta, fin=None: 'data: ' + js({'id': 'chatcmpl-1', 'object': 'chat.completion.chunk', 'choices': [{'index': 0, 'delta': delta, 'finish_reason': fin}]}) + '\n\n'
    ev = [ch({'role': 'assistant', 'content': ''})]
    ev += [ch({'content': text[i:i + 5]}) for i in range(0, len(text), 5)]
    for i, (cid, name, args) in enumerate(calls):
        ev.append(ch({'tool_calls': [{'index': i, 'id': cid, 'type': 'function', 'function': {'name': name, 'arguments': ''}}]}))
        ev += [ch({'tool_calls': [{'index': i, 'function': {'arguments': args[j:j + 7]}}]}) for j in range(0, len(args), 7)]
    ev.append(ch({}, 'tool_calls' if calls else 'stop'))
    ev.append('data: ' + js({'id': 'chatcmpl-1', 'choices': [], 'usage': {'prompt_tokens': 10}}) + '\n\n')
    ev.append('data: [DONE]\n\n')
    return ''.join(ev)


def anthropic_events(text, calls):
    ev = lambda t, d: 'event: %s\ndata: %s\n\n' % (t, js(dict(type=t, **d)))
    out = [ev('message_start', {'message': {'id': 'msg_1', 'type': 'message', 'role': 'assistant', 'content': []}})]
    idx = 0
    if text:
        out.append(ev('content_block_start', {'index': 0, 'content_block': {'type': 'text', 'text': ''}}))
        out.append(ev('ping', {}))
        out += [ev('content_block_delta', {'index': 0, 'delta': {'type': 'text_delta', 'text': text[i:i + 5]}}) for i in range(0, len(text), 5)]
        out.append(ev('content_block_stop', {'index': 0}))
        idx = 1
    for cid, name, args in calls:
        out.append(ev('content_block_start', {'index': idx, 'content_block': {'type': 'tool_use', 'id': cid, 'name': name, 'input': {}}}))
        out += [ev('content_block_delta', {'index': idx, 'delta': {'type': 'input_json_delta', 'partial_json': args[j:j + 7]}}) for j in range(0, len(args), 7)]
        out.append(ev('content_block_stop', {'index': idx}))
        idx += 1
    out.append(ev('message_delta', {'delta': {'stop_reason': 'tool_use' if calls else 'end_turn'}, 'usage': {'output_tokens': 5}}))
    out.append(ev('message_stop', {}))
    return ''.join(out)


calls = [('call_1', 'demo__echo', '{"text":"hi"}'), ('call_2', 'demo__add', '{"a":1,"b":2}')]
llm('openai_stream_text', 0, 1, 0, 0, openai_events('Hello from the fake LLM.', []))
llm('openai_stream_tools', 0, 1, 0, 13, openai_events('Calling.', calls))
llm('openai_stream_crlf', 0, 1, 0, 1, openai_events('x', calls[:1]).replace('\n', '\r\n'))
llm('openai_stream_cut', 0, 1, 0, 0, openai_events('cut', [])[:120])
llm('openai_stream_error', 0, 1, 0, 0, 'data: ' + js({'error': {'message': 'overloaded', 'type': 'server_error'}}) + '\n\n')
llm('openai_stream_badjson', 0, 1, 0, 0, 'data: {"choices":[{"delta":{"content":\n\n')
llm('anthropic_stream_text', 1, 1, 0, 0, anthropic_events('Hello from the fake LLM.', []))
llm('anthropic_stream_tools', 1, 1, 0, 9, anthropic_events('Calling.', calls))
llm('anthropic_stream_error', 1, 1, 0, 0, 'event: error\ndata: ' + js({'type': 'error', 'error': {'type': 'overloaded_error', 'message': 'Overloaded'}}) + '\n\n')
llm('openai_whole', 0, 0, 0, 0, js({'id': 'c1', 'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': 'Hi', 'tool_calls': [{'id': 'call_1', 'type': 'function', 'function': {'name': 'demo__echo', 'arguments': '{"text":"hi"}'}}]}, 'finish_reason': 'tool_calls'}]}))
llm('anthropic_whole', 1, 0, 0, 0, js({'id': 'msg_1', 'type': 'message', 'content': [{'type': 'text', 'text': 'Hi'}, {'type': 'tool_use', 'id': 'toolu_1', 'name': 'demo__echo', 'input': {'text': 'hi'}}], 'stop_reason': 'tool_use'}))
llm('http_401_json', 0, 0, 3, 0, js({'error': {'message': 'Incorrect API key provided: sk-fuzz-SECRET-key-0123456789', 'type': 'invalid_request_error'}}))
llm('http_500_text', 1, 0, 5, 0, 'Internal\nServer\tError sk-fuzz-SECRET-key-0123456789')
llm('http_429_anthropic', 1, 0, 4, 0, js({'type': 'error', 'error': {'type': 'rate_limit_error', 'message': 'slow down'}}))
llm('timeout', 0, 1, 0, 0, openai_events('partial', [])[:60], code=5)


# --- mailbox: byte 0 = flags, byte 1 = recv chunk, records by "\n---\n"

SEP = b'\n---\n'


def mb_frame(ftype, body):
    if isinstance(body, str):
        body = body.encode()
    return struct.pack('>IB3x', len(body), ftype) + body


def mb(name, flags, chunk, *records):
    recs = [r.encode() if isinstance(r, str) else r for r in records]
    put('mailbox', name, bytes([flags, chunk]) + SEP.join(recs))


hdr = js({'conn_id': 7, 'timeout': 30000, 'method': 'tools/call', 'server': 'demo', 'token': 'rmcp-1-2'}) + '\n'
params = js({'name': 'echo', 'arguments': {'text': 'hi'}, '_meta': {'progressToken': 'rmcp-1-2'}})
call = mb_frame(1, hdr + params)
note = js({'jsonrpc': '2.0', 'method': 'notifications/progress', 'params': {'progressToken': 'rmcp-1-2', 'progress': 1}})
mb('owner_ok', 0, 0, call, 'N' + note, 'R' + js({'content': [{'type': 'text', 'text': 'hi'}]}))
mb('owner_error', 0, 3, call, 'E' + js({'code': -32602, 'message': 'bad'}))
mb('owner_declined', 2, 0, call)
mb('owner_busy_blocked', 4 | 8, 5, call)
mb('owner_again_chunks', 16, 1, call, 'N' + note, 'R{}')
mb('owner_caller_gone', 0, 0, call + b'x', 'N' + note)
mb('owner_no_newline', 0, 0, mb_frame(1, js({'method': 'tools/list'})))
mb('owner_bad_type', 0, 0, mb_frame(9, 'x'))
mb('owner_huge_len', 0, 0, b'\x04\x00\x00\x01\x01\x00\x00\x00')
mb('owner_short', 32, 0, call[:20])
res = js({'content': [{'type': 'text', 'text': 'hi'}]})
mb('caller_result', 1, 0, mb_frame(2, note) + mb_frame(2, note) + mb_frame(3, res))
mb('caller_error', 1 | 16, 7, mb_frame(4, js({'code': -32001, 'message': 'gone'})))
mb('caller_call_frame', 1, 0, call)
mb('caller_eof', 1, 0, mb_frame(2, note)[:11])
mb('caller_empty_result', 1 | 32, 0, mb_frame(3, ''))


# --- handshake and rpc_in: the reverse server's side of a session

def ws(payload, opcode=1, fin=True, mask=True):
    """a client frame; the mask key 0 leaves the payload as it is"""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + struct.pack('>H', n)
    else:
        h = bytes([b0, m | 127]) + struct.pack('>Q', n)
    return h + (b'\0\0\0\0' if mask else b'') + payload


INIT = js({'jsonrpc': '2.0', 'id': 1, 'result': {'protocolVersion': '2025-06-18', 'capabilities': {'tools': {'listChanged': True}}, 'serverInfo': {'name': 'demo', 'version': '1.0'}}})
INIT_NOTOOLS = js({'jsonrpc': '2.0', 'id': 1, 'result': {'protocolVersion': '2025-03-26', 'capabilities': {}, 'serverInfo': {'name': 'demo'}}})
TOOL = lambda name: {'name': name, 'description': 'Echo a text', 'inputSchema': {'type': 'object', 'properties': {'text': {'type': 'string'}}, 'required': ['text']}}
LIST = js({'jsonrpc': '2.0', 'id': 2, 'result': {'tools': [TOOL('echo'), TOOL('add')]}})
LIST_PAGE1 = js({'jsonrpc': '2.0', 'id': 2, 'result': {'tools': [TOOL('echo')], 'nextCursor': 'p2'}})
LIST_PAGE2 = js({'jsonrpc': '2.0', 'id': 3, 'result': {'tools': [TOOL('add'), TOOL('echo')]}})
PING_REQ = js({'jsonrpc': '2.0', 'id': 'srv-1', 'method': 'ping'})
SAMPLING = js({'jsonrpc': '2.0', 'id': 7, 'method': 'sampling/createMessage', 'params': {}})
LOGMSG = js({'jsonrpc': '2.0', 'method': 'notifications/message', 'params': {'level': 'warning', 'logger': 'demo', 'data': 'line one\nline two'}})
CHANGED = js({'jsonrpc': '2.0', 'method': 'notifications/tools/list_changed'})
KEY = 'dGhlIHNhbXBsZSBub25jZQ=='


def request(target='/ws', headers=None, extra=''):
    h = {'Host': 'localhost', 'Upgrade': 'websocket', 'Connection': 'Upgrade',
         'Sec-WebSocket-Key': KEY, 'Sec-WebSocket-Version': '13',
         'X-MCP-Server-Name': 's2'}
    h.update(headers or {})
    lines = ['GET %s HTTP/1.1' % target] + ['%s: %s' % (k, v) for k, v in h.items() if v is not None]
    return ('\r\n'.join(lines) + '\r\n' + extra + '\r\n').encode()


def hs(name, flags, chunk, req, later=None):
    data = bytes([flags, chunk]) + req
    if later is not None:
        data += SEP + later
    put('handshake', name, data)


session = ws(INIT) + ws(LIST) + ws(PING_REQ) + ws(LOGMSG) + ws(b'', opcode=9) + ws(b'\x03\xe8bye', opcode=8)
hs('accept_session', 0, 0, request() + session)
hs('accept_later_chunks', 2, 3, request(), session)
hs('accept_blocked', 1, 0, request(), ws(INIT_NOTOOLS) + ws(SAMPLING))
hs('bearer_ok', 0, 0, request(headers={'X-MCP-Server-Name': 's1', 'Authorization': 'Bearer secret'}))
hs('bearer_wrong', 0, 0, request(headers={'X-MCP-Server-Name': 's1', 'Authorization': 'Bearer nope'}))
hs('basic_auth', 0, 0, request(headers={'X-MCP-Server-Name': 's1', 'Authorization': 'Basic c2VjcmV0'}))
hs('query_token', 0, 0, request('/ws?server_name=s1&token=secret', {'X-MCP-Server-Name': None}))
hs('query_token_upper', 0, 0, request('/ws?server_name=s1&TOKEN=secret', {'X-MCP-Server-Name': None}))
hs('query_token_escaped', 0, 0, request('/ws?server_name=%73%31;token=sec%72et&token=x', {'X-MCP-Server-Name': None}))
hs('disabled', 0, 0, request(headers={'X-MCP-Server-Name': 's3', 'Authorization': 'Bearer secret'}))
hs('unknown_server', 0, 0, request(headers={'X-MCP-Server-Name': 'nope'}))
hs('bad_name', 0, 0, request(headers={'X-MCP-Server-Name': '../etc'}))
hs('no_upgrade', 0, 0, request(headers={'Upgrade': None}))
hs('connection_list', 0, 0, request(headers={'Connection': 'keep-alive, Upgrade', 'Upgrade': 'h2c, WebSocket'}))
hs('version_8', 0, 0, request(headers={'Sec-WebSocket-Version': '8'}))
hs('bad_key', 0, 0, request(headers={'Sec-WebSocket-Key': 'short=='}))
hs('protocol_mcp', 0, 0, request(headers={'Sec-WebSocket-Protocol': 'chat, mcp'}))
hs('post', 0, 0, request().replace(b'GET', b'POST', 1))
hs('http10', 0, 0, request().replace(b'HTTP/1.1', b'HTTP/1.0', 1))
hs('body', 0, 0, request(headers={'Content-Length': '5'}))
hs('chunked', 0, 0, request(headers={'Transfer-Encoding': 'chunked'}))


def rpc(name, flags, *records):
    recs = [r.encode() if isinstance(r, str) else r for r in records]
    put('rpc_in', name, bytes([flags]) + SEP.join(recs))


CALL_PARAMS = js({'name': 'echo', 'arguments': {'text': 'hi'}, '_meta': {'progressToken': '"rmcp-fuzz-0"'}})
PROGRESS = lambda n: js({'jsonrpc': '2.0', 'method': 'notifications/progress', 'params': {'progressToken': 'rmcp-fuzz-%d' % n, 'progress': 1, 'total': 2}})
RESULT = lambda i: js({'jsonrpc': '2.0', 'id': i, 'result': {'content': [{'type': 'text', 'text': 'hi'}]}})
ERROR = lambda i: js({'jsonrpc': '2.0', 'id': i, 'error': {'code': -32602, 'message': 'bad arguments'}})
rpc('session_call', 0, 'T' + INIT, 'T' + LIST, 'Ctools/call\n' + CALL_PARAMS, 'T' + PROGRESS(0), 'T' + LOGMSG, 'T' + RESULT(3))
rpc('session_pages', 0, 'T' + INIT, 'T' + LIST_PAGE1, 'T' + LIST_PAGE2, 'T' + CHANGED, 'T' + js({'jsonrpc': '2.0', 'id': 4, 'result': {'tools': []}}))
rpc('session_batch', 0, 'T' + INIT, 'T' + LIST, 'Ctools/call\n{}', 'Ctools/call\n{}', 'T[' + RESULT(3) + ',' + ERROR(4) + ',' + PING_REQ + ']')
rpc('session_ndjson', 0, 'T' + INIT + '\n' + LIST + '\n' + PING_REQ + '\n')
rpc('session_no_tools', 0, 'T' + INIT_NOTOOLS, 'T' + SAMPLING, 'Cresources/list\n', 'X', 'T' + RESULT(2))
rpc('session_blocked', 1, 'T' + INIT, 'W', 'T' + LIST, 'w', 'Ctools/call\n{}', 'P', 'P', 'W')
rpc('session_timeouts', 0, 'T' + INIT, 'H', 'T' + LIST)
rpc('init_error', 0, 'T' + js({'jsonrpc': '2.0', 'id': 1, 'error': {'code': -32603, 'message': 'nope'}}))
rpc('init_bad_version', 0, 'T' + js({'jsonrpc': '2.0', 'id': 1, 'result': {'protocolVersion': '1999-01-01'}}))
rpc('garbage', 0, 'Tnot json', 'T{"jsonrpc":"1.0"}')
rpc('binary_and_raw', 0, 'B' + INIT, b'F' + ws(b'\x03\xe8', opcode=8))
rpc('fragments', 0, b'F' + ws(INIT[:10], fin=False) + ws(INIT[10:], opcode=0))
rpc('duplicate_tools', 0, 'T' + INIT, 'T' + js({'jsonrpc': '2.0', 'id': 2, 'result': {'tools': [TOOL('echo'), TOOL('echo'), {'name': 'bad name!'}, {'name': 'x' * 200}]}}))
rpc('progress_unknown_token', 0, 'T' + INIT, 'T' + LIST, 'Ctools/call\n' + CALL_PARAMS, 'T' + PROGRESS(9), 'Ctools/call\n{}', 'T' + LOGMSG, 'X', 'X')


# --- endpoint: byte 0 = flags, then whole HTTP requests; @SID@ = session

def post(body, path='/mcp', headers=None):
    if not isinstance(body, str):
        body = js(body)
    h = {'Host': 'localhost', 'Content-Type': 'application/json',
         'Accept': 'application/json, text/event-stream',
         'MCP-Protocol-Version': '2025-06-18', 'Mcp-Session-Id': '@SID@'}
    h.update(headers or {})
    h['Content-Length'] = str(len(body.encode()))
    lines = ['POST %s HTTP/1.1' % path] + ['%s: %s' % (k, v) for k, v in h.items() if v is not None]
    return '\r\n'.join(lines) + '\r\n\r\n' + body


def get(path='/mcp', headers=None, method='GET'):
    h = {'Host': 'localhost', 'Accept': 'text/event-stream', 'Mcp-Session-Id': '@SID@'}
    h.update(headers or {})
    lines = ['%s %s HTTP/1.1' % (method, path)] + ['%s: %s' % (k, v) for k, v in h.items() if v is not None]
    return '\r\n'.join(lines) + '\r\n\r\n'


def ep(name, flags, *reqs):
    put('endpoint', name, bytes([flags]) + SEP.join(r.encode() for r in reqs))


def rq(i, method, params=None):
    m = {'jsonrpc': '2.0', 'id': i, 'method': method}
    if params is not None:
        m['params'] = params
    return m


INITIALIZE = post(rq(1, 'initialize', {'protocolVersion': '2025-06-18', 'capabilities': {}, 'clientInfo': {'name': 'fuzz', 'version': '1'}}), headers={'Mcp-Session-Id': None, 'MCP-Protocol-Version': None})
INITIALIZED = post({'jsonrpc': '2.0', 'method': 'notifications/initialized'})
ep('session', 0, INITIALIZE, INITIALIZED, post(rq(2, 'tools/list')), post(rq(3, 'tools/call', {'name': 's2__echo', 'arguments': {'text': 'hi'}, '_meta': {'progressToken': 7}})), post(rq(4, 'ping')), get(method='DELETE'))
ep('session_json_only', 1, INITIALIZE, post(rq(2, 'tools/list', {'cursor': 'x'}), headers={'Accept': 'application/json'}), post(rq(5, 'logging/setLevel', {'level': 'debug'})), post(rq(6, 'resources/list')), post(rq(7, 'prompts/get', {'name': 'p'})), post(rq(8, 'completion/complete', {'ref': {}, 'argument': {}})))
ep('per_server', 0, post(rq(1, 'initialize', {'protocolVersion': '2025-03-26'}), path='/mcp/s2', headers={'Mcp-Session-Id': None}), post(rq(2, 'tools/list'), path='/mcp/s2'), post(rq(3, 'tools/call', {'name': 'echo', 'arguments': {}}), path='/mcp/s2'), post(rq(4, 'tools/list'), path='/mcp/nope'))
ep('cancel_listen', 0, INITIALIZE, post({'jsonrpc': '2.0', 'method': 'notifications/cancelled', 'params': {'requestId': 3, 'reason': 'x'}}), get())
ep('errors', 0, post('{not json', headers={'Mcp-Session-Id': None}), post('[' + js(rq(1, 'ping')) + ']'), post({'jsonrpc': '2.0', 'id': {}, 'method': 'x'}), post({'jsonrpc': '2.0', 'id': 1, 'result': {}}), post(rq(1, 'tools/call', 'str')), post(rq(1, 'tools/list'), headers={'Mcp-Session-Id': 'nope'}), post(rq(1, 'ping'), headers={'Content-Type': 'text/plain'}), post(rq(1, 'ping'), headers={'Accept': 'text/html'}), post(rq(1, 'ping'), headers={'Origin': 'http://evil.example'}), get(method='PUT'))
MODERN = {'io.modelcontextprotocol/protocolVersion': '2026-07-28'}
ep('modern', 0, post(rq(1, 'server/discover', {'_meta': MODERN}), headers={'Mcp-Session-Id': None, 'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'server/discover'}), post(rq(2, 'tools/call', {'name': 's2__add', 'arguments': {'a': 1}, '_meta': MODERN}), headers={'Mcp-Session-Id': None, 'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 's2__add'}), post(rq(3, 'tools/list', {'_meta': dict(MODERN, **{'io.modelcontextprotocol/clientInfo': {}})}), headers={'Mcp-Session-Id': None, 'MCP-Protocol-Version': '2026-07-28'}), post(rq(4, 'subscriptions/listen', {'_meta': MODERN}), headers={'Mcp-Session-Id': None, 'MCP-Protocol-Version': '2026-07-28'}))


# --- chat and a2a: byte 0 = flags, then whole HTTP requests

def chat(name, flags, *reqs):
    put('chat', name, bytes([flags]) + SEP.join(r.encode() for r in reqs))


def cpost(body, path='/chat', headers=None):
    h = {'Accept': 'application/json'}
    h.update(headers or {})
    return post(body, path, dict(h, **{'Mcp-Session-Id': None, 'MCP-Protocol-Version': None}))


A2A_MSG = lambda i, method, text, ctx=None: {'jsonrpc': '2.0', 'id': i, 'method': method, 'params': {'message': dict({'role': 'user', 'messageId': 'm-%d' % i, 'kind': 'message', 'parts': [{'kind': 'text', 'text': text}]}, **({'contextId': ctx} if ctx else {}))}}
chat('chat_turns', 0, cpost({'message': 'What tools do you have?'}), cpost({'message': '/tools', 'context_id': 'c-1'}), cpost({'message': '/history', 'context_id': 'c-1'}), cpost({'message': 'again', 'context_id': 'c-1'}, headers={'Accept': 'text/event-stream'}))
chat('chat_errors', 0, cpost('not json'), cpost({'message': ''}), cpost({'message': 'x', 'context_id': 'bad id!'}), cpost({'message': 'x', 'context_id': 5}), cpost({'message': 'x'}, headers={'Content-Type': 'text/plain'}), get('/chat', method='PUT'))
chat('a2a_card_send', 0, get('/a2a', headers={'Accept': 'application/json'}), cpost(A2A_MSG(1, 'message/send', 'hello'), path='/a2a'), cpost(A2A_MSG(2, 'message/stream', 'hi', 'ctx-1'), path='/a2a', headers={'Accept': 'text/event-stream'}), cpost({'jsonrpc': '2.0', 'id': 3, 'method': 'tasks/get', 'params': {'id': 'task-1', 'historyLength': 2}}, path='/a2a'), cpost({'jsonrpc': '2.0', 'id': 4, 'method': 'tasks/cancel', 'params': {'id': 'task-1'}}, path='/a2a'))
chat('a2a_errors', 1, cpost('{', path='/a2a'), cpost({'jsonrpc': '2.0', 'id': 1, 'method': 'tasks/pushNotificationConfig/set', 'params': {}}, path='/a2a'), cpost({'jsonrpc': '2.0', 'id': [], 'method': 'x'}, path='/a2a'), cpost({'jsonrpc': '2.0', 'id': 2, 'method': 'message/send', 'params': {'message': {'parts': [{'kind': 'file', 'file': {}}]}}}, path='/a2a'), cpost({'jsonrpc': '2.0', 'id': 3, 'method': 'tasks/resubscribe', 'params': []}, path='/a2a'))
