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
