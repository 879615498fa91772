# The agent-facing MCP endpoint (reverse_mcp_endpoint): Streamable HTTP
# with sessions in the shared zone, tools/list of the connected reverse
# servers (aggregated "<server>__<tool>" names on the location's URI, a
# server's own names on <location>/<server>), tools/call forwarded to the
# scripted reverse server (t/lib/Test/Nginx/ReverseMCP.pm) from either
# worker, progress as SSE, cancellation, the transport's error answers,
# Origin checks, and the official MCP TypeScript SDK client against the
# SDK demo reverse server.
#
# An HTTP request that makes nginx call a reverse server needs the test to
# answer on that server's socket while the request is in flight: mcp()
# sends the request on a non-blocking socket and pumps the given servers
# until the response is complete.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::MCP;

master_on();
workers(2);

run_tests();

__DATA__

=== TEST 1: initialize: session id, negotiated version, capabilities; 202 for notifications; ping
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my %init = (capabilities => {}, clientInfo => { name => 't', version => '1' });
my $r = mcp(msg => req(1, 'initialize',
                       { protocolVersion => '2025-06-18', %init }));
is($r->{status}, 200, 'initialize: 200');
like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON reply');
my $sid = $r->{headers}{'mcp-session-id'} // '';
like($sid, qr/^[0-9a-f]{32}$/, 'Mcp-Session-Id: 32 hex digits');
my $res = $r->{json}{result};
is($r->{json}{id}, 1, 'the id echoed');
is($res->{protocolVersion}, '2025-06-18', 'a supported version is echoed');
is(enc($res->{capabilities}), '{"logging":{},"tools":{"listChanged":true}}',
   'capabilities');
is($res->{serverInfo}{name}, 'ngx_http_reverse_mcp_module', 'serverInfo');
like($res->{instructions}, qr/agent "a1", named <server>__<tool>/,
     'instructions');

for my $v (qw(2025-03-26 2025-11-25)) {
    my $x = mcp(msg => req("s-$v", 'initialize',
                           { protocolVersion => $v, %init }));
    is($x->{json}{result}{protocolVersion}, $v, "$v is echoed");
    is($x->{json}{id}, "s-$v", 'a string id echoed');
}
for my $v (qw(2024-11-05 1999-01-01)) {
    my $x = mcp(msg => req(2, 'initialize', { protocolVersion => $v, %init }));
    is($x->{json}{result}{protocolVersion}, '2025-11-25',
       "$v: the latest is offered");
}
my $x = mcp(msg => req(3, 'initialize', { %init }));
is($x->{json}{error}{code}, -32602, 'initialize without protocolVersion');
my $other = mcp(msg => req(1, 'initialize',
                           { protocolVersion => '2025-06-18', %init }));
isnt($other->{headers}{'mcp-session-id'}, $sid, 'each session its own id');

# the session works from both workers (new connection each time)
my $n = mcp(session => $sid, msg => { jsonrpc => '2.0',
                                      method => 'notifications/initialized' });
is($n->{status}, 202, 'notifications/initialized: 202');
is($n->{body}, '', '... without a body');
for my $i (1 .. 6) {
    my $p = mcp(session => $sid, version => '2025-06-18',
                msg => req(10 + $i, 'ping'));
    is_deeply($p->{json}, { jsonrpc => '2.0', id => 10 + $i, result => {} },
              "ping $i: {}");
}
my $resp = mcp(session => $sid, msg => { jsonrpc => '2.0', id => 5,
                                         result => {} });
is($resp->{status}, 400,
   'a response to no request of the gateway: 400 (t/014 has the relayed)');
is_deeply($resp->{json}{error}, { code => -32600, message => 'Invalid '
          . 'Request: the gateway sent no request with id 5' },
          '... -32600, saying so');
my $lv = mcp(session => $sid, msg => req(7, 'logging/setLevel',
                                         { level => 'warning' }));
is_deeply($lv->{json}{result}, {}, 'logging/setLevel: {}');
$lv = mcp(session => $sid, msg => req(8, 'logging/setLevel',
                                      { level => 'loud' }));
is($lv->{json}{error}{code}, -32602, 'logging/setLevel with a bad level');
my $um = mcp(session => $sid, msg => req(9, 'resources/list'));
is($um->{status}, 200, 'unknown method: 200');
is($um->{json}{error}{code}, -32601, '... -32601');
like($um->{json}{error}{message}, qr{resources/list}, '... naming it');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 2: transport errors: session, protocol version header, JSON, methods, media types
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp {
    reverse_mcp_endpoint a1;
    client_max_body_size 2k;
}
--- test_code
my $sid = session();
my $r = mcp(msg => req(1, 'ping'));
is($r->{status}, 400, 'no Mcp-Session-Id: 400');
is($r->{json}{error}{code}, -32000, '... -32000');
like($r->{json}{error}{message}, qr/Mcp-Session-Id header is required/,
     '... saying so');
$r = mcp(msg => { jsonrpc => '2.0', method => 'notifications/initialized' });
is($r->{status}, 400, 'a notification without a session: 400');
$r = mcp(session => 'f' x 32, msg => req(1, 'ping'));
is($r->{status}, 404, 'unknown session: 404');
is($r->{json}{error}{code}, -32001, '... -32001');
$r = mcp(session => 'x', msg => req(1, 'ping'));
is($r->{status}, 404, 'malformed session id: 404');
$r = mcp(session => $sid, version => '2099-01-01', msg => req(1, 'ping'));
is($r->{status}, 400, 'unsupported MCP-Protocol-Version: 400');
like($r->{json}{error}{message}, qr/Unsupported protocol version: 2099-01-01/,
     '... naming it');
$r = mcp(session => $sid, version => '2024-11-05', msg => req(1, 'ping'));
is($r->{status}, 400, 'MCP-Protocol-Version 2024-11-05 (HTTP+SSE era): 400');
for my $v (qw(2025-03-26 2025-06-18 2025-11-25)) {
    $r = mcp(session => $sid, version => $v, msg => req(1, 'ping'));
    is($r->{status}, 200, "MCP-Protocol-Version $v: 200");
}
$r = mcp(session => $sid, raw => '{"jsonrpc":"2.0",');
is($r->{status}, 400, 'parse error: 400');
is($r->{json}{error}{code}, -32700, '... -32700');
ok(exists $r->{json}{id} && !defined $r->{json}{id}, '... id null');
$r = mcp(session => $sid, raw => '');
is($r->{json}{error}{code}, -32700, 'empty body: -32700');
$r = mcp(session => $sid, raw => '[' . enc(req(1, 'ping')) . ']');
is($r->{status}, 400, 'a batch: 400');
is($r->{json}{error}{code}, -32600, '... -32600');
$r = mcp(session => $sid, raw => '"ping"');
is($r->{json}{error}{code}, -32600, 'not an object: -32600');
$r = mcp(session => $sid, raw => '{"jsonrpc":"1.0","id":1,"method":"ping"}');
is($r->{json}{error}{code}, -32600, 'jsonrpc 1.0: -32600');
$r = mcp(session => $sid, raw => '{"jsonrpc":"2.0","id":{},"method":"ping"}');
is($r->{json}{error}{code}, -32600, 'an object id: -32600');
$r = mcp(session => $sid, raw => '{"jsonrpc":"2.0","id":1}');
is($r->{json}{error}{code}, -32600, 'no method: -32600');
$r = mcp(session => $sid, raw => '{"jsonrpc":"2.0","id":1,"method":"ping",'
                                 . '"params":[1]}');
is($r->{json}{error}{code}, -32602, 'params not an object: -32602');
$r = mcp(session => $sid, raw => '{"jsonrpc":"2.0","id":1,"method":"ping"'
                                 . ('[' x 70) . ']' x 70 . '}');
is($r->{status}, 400, 'too deep: 400');

$r = mcp(session => $sid, accept => 'text/html', msg => req(1, 'ping'));
is($r->{status}, 406, 'Accept text/html only: 406');
$r = mcp(session => $sid, accept => 'text/event-stream',
         msg => req(21, 'ping'));
is($r->{status}, 200, 'Accept text/event-stream only: 200');
like($r->{headers}{'content-type'}, qr{^text/event-stream}, '... as SSE');
is_deeply($r->{json}, { jsonrpc => '2.0', id => 21, result => {} },
          '... the reply in one event');
$r = mcp(session => $sid, accept => undef, msg => req(22, 'ping'));
is($r->{json}{id}, 22, 'no Accept header: JSON');
$r = mcp(session => $sid, accept => '*/*', msg => req(23, 'ping'));
is($r->{json}{id}, 23, 'Accept */*: JSON');
$r = mcp(session => $sid, content_type => 'text/plain',
         msg => req(1, 'ping'));
is($r->{status}, 415, 'Content-Type text/plain: 415');
$r = mcp(session => $sid, content_type => 'application/json; charset=utf-8',
         msg => req(24, 'ping'));
is($r->{json}{id}, 24, 'Content-Type with a charset: fine');
$r = mcp(session => $sid, raw => '{"x":"' . ('a' x 3000) . '"}');
is($r->{status}, 413, 'client_max_body_size: 413');

$r = mcp(method => 'GET', session => $sid,
         headers => [Accept => 'application/json']);
is($r->{status}, 406, 'GET accepting only JSON: 406');
$r = mcp(method => 'PUT', session => $sid, raw => '{}');
is($r->{status}, 405, 'PUT: 405');
is($r->{headers}{allow}, 'GET, POST, DELETE', 'Allow: GET, POST, DELETE');

$r = mcp(method => 'DELETE');
is($r->{status}, 400, 'DELETE without a session: 400');
$r = mcp(method => 'DELETE', session => $sid);
is($r->{status}, 204, 'DELETE: 204');
$r = mcp(session => $sid, msg => req(1, 'ping'));
is($r->{status}, 404, 'the deleted session: 404');
$r = mcp(method => 'DELETE', session => $sid);
is($r->{status}, 404, 'DELETE again: 404');
--- error_log
client intended to send too large body
--- no_error_log
[alert]
[crit]



=== TEST 3: Origin: foreign 403; same origin on a configured name, listed origins
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2;
    server_name mcp.example.test *.wild.test;
    location /mcp { reverse_mcp_endpoint a1; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2;
    server_name other.example.test;
    location /mcp { reverse_mcp_endpoint a1; }
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
location /open {
    reverse_mcp_endpoint a1;
    reverse_mcp_allowed_origins https://app.example.com;
    reverse_mcp_allowed_origins http://tool.example.org:8443;
}
location /any {
    reverse_mcp_endpoint a1;
    reverse_mcp_allowed_origins *;
}
--- test_code
my $init = req(1, 'initialize', { protocolVersion => '2025-06-18' });
my $p = $ServerPort;
my @cases = (
    # path, Host, Origin, status, what
    ['/mcp', "localhost:$p", "http://localhost:$p", 200, 'same origin'],
    ['/mcp', "127.0.0.1:$p", "http://127.0.0.1:$p", 200, 'same origin (IP)'],
    ['/mcp', "localhost:$p", "http://localhost:1", 403, 'another port'],
    ['/mcp', "localhost:$p", "https://localhost:$p", 403, 'another scheme'],
    ['/mcp', 'evil.example.com', 'http://evil.example.com', 403,
     'DNS rebinding: Host and Origin agree on a name nginx does not serve'],
    ['/mcp', "localhost:$p", 'null', 403, 'Origin null'],
    ['/mcp', "localhost:$p", 'https://app.example.com', 403, 'not listed'],
    ['/open', "localhost:$p", 'https://app.example.com', 200, 'listed'],
    ['/open', "localhost:$p", 'HTTPS://APP.example.com', 200,
     'listed (case)'],
    ['/open', "localhost:$p", 'http://tool.example.org:8443', 200,
     'listed with a port'],
    ['/open', "localhost:$p", 'http://tool.example.org', 403,
     'listed with another port'],
    ['/any', "localhost:$p", 'https://whatever.example', 200, '"*"'],
);
for my $c (@cases) {
    my ($path, $host, $origin, $status, $what) = @$c;
    my $r = mcp(path => $path, host => $host, msg => $init,
                headers => [ Origin => $origin ]);
    is($r->{status}, $status, "$what: $status");
    is($r->{json}{error}{message}, 'Forbidden: Origin not allowed',
       '... with a JSON-RPC error') if $status == 403;
}
# names of the server{} (first server_name, others, wildcards)
my $p2 = $ServerPort2;
for my $c (['mcp.example.test', 200], ['a.wild.test', 200],
           ['MCP.Example.Test', 200], ['evil.example.com', 403],
           ['other.example.test', 200])
{
    my ($name, $status) = @$c;
    my $r = mcp(port => $p2, host => "$name:$p2", msg => $init,
                headers => [ Origin => "http://$name:$p2" ]);
    is($r->{status}, $status, "port 2, Host and Origin $name: $status");
}
my $r = mcp(port => $p2, host => "other.example.test:$p2", msg => $init,
            headers => [ Origin => "http://mcp.example.test:$p2" ]);
is($r->{status}, 403, "a name of another server{}: 403");
$r = mcp(msg => $init);
is($r->{status}, 200, 'no Origin (not a browser): 200');
$r = mcp(method => 'DELETE', session => 'f' x 32,
         headers => [ Origin => 'http://evil.example.com' ]);
is($r->{status}, 403, 'DELETE is checked too');
--- error_log
endpoint refused Origin "http://evil.example.com"
--- no_error_log
[alert]
[crit]



=== TEST 4: tools/list: aggregated and per-server names, pagination, cursors
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t;
                       server s3 token=t; }
reverse_mcp_agent a2 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
location /paged/ {
    reverse_mcp_endpoint a1;
    reverse_mcp_page_size 2;
}
location /dots { reverse_mcp_endpoint a1; reverse_mcp_tool_separator -; }
location = /exact { reverse_mcp_endpoint a1; }
location /a2 { reverse_mcp_endpoint a2; }
--- test_code
my $s1 = up(name => 's1', tools => [ tool('echo'),
    tool('zeta', annotations => { readOnlyHint => \1 }), tool('a__b') ]);
my $s2 = up(name => 's2', tools => [ tool('echo'), tool('x.y') ]);
my $sid = session();
my $r = mcp(session => $sid, msg => req(1, 'tools/list'));
is($r->{status}, 200, 'tools/list: 200');
is_deeply(names($r), [qw(s1__a__b s1__echo s1__zeta s2__echo
                         s2__x_y_6f059e97f7)],
          'aggregated: <server>__<tool>, sorted by server then tool; "."'
          . ' is not in a function name: shortened (t/015)');
my ($zeta) = grep { $_->{name} eq 's1__zeta' } @{ $r->{json}{result}{tools} };
is(enc($zeta), '{"annotations":{"readOnlyHint":true},"description":'
              . '"tool zeta","inputSchema":{"type":"object"},'
              . '"name":"s1__zeta"}',
   'the tool object as the server sent it, renamed');
ok(!exists $r->{json}{result}{nextCursor}, 'one page: no nextCursor');

my $p1 = session(path => '/mcp/s1');
$r = mcp(path => '/mcp/s1', session => $p1, msg => req(2, 'tools/list'));
is_deeply(names($r), [qw(a__b echo zeta)], '/mcp/s1: names unchanged');
$r = mcp(path => '/mcp/s2/', session => $p1, msg => req(2, 'tools/list'));
is_deeply(names($r), [qw(echo x.y)],
          '/mcp/s2/: a trailing slash; sessions serve any URI of the agent');
$r = mcp(path => '/mcp/s3', session => $p1, msg => req(3, 'tools/list'));
is($r->{status}, 200, 'a configured server that is not connected: 200');
is_deeply(names($r), [], '... and no tools');
$r = mcp(path => '/mcp/nope', session => $p1, msg => req(4, 'tools/list'));
is($r->{status}, 404, 'a server the agent does not have: 404');
$r = mcp(path => '/mcp/s1/x', session => $p1, msg => req(4, 'tools/list'));
is($r->{status}, 404, 'two path segments: 404');
$r = mcp(path => '/mcpx', session => $p1, msg => req(4, 'tools/list'));
is($r->{status}, 404, '/mcpx is not /mcp/x: 404');
$r = mcp(path => '/exact', session => $sid, msg => req(5, 'tools/list'));
is(scalar @{ names($r) }, 5, 'an exact location: the aggregate');
my $d = session(path => '/dots');
$r = mcp(path => '/dots', session => $d, msg => req(5, 'tools/list'));
is_deeply(names($r), [qw(s1-a__b s1-echo s1-zeta s2-echo
                         s2-x_y_6f059e97f7)],
          'reverse_mcp_tool_separator "-"');

# a session is bound to its agent
$r = mcp(path => '/a2', session => $sid, msg => req(6, 'tools/list'));
is($r->{status}, 404, "another agent's session: 404");

# pages of 2
my $ps = session(path => '/paged/');
my (@all, @cursors);
my $cursor;
for my $page (1 .. 5) {
    $r = mcp(path => '/paged/', session => $ps,
             msg => req(10 + $page, 'tools/list',
                        defined $cursor ? { cursor => $cursor } : {}));
    push @all, @{ names($r) };
    $cursor = $r->{json}{result}{nextCursor};
    last unless defined $cursor;
    push @cursors, $cursor;
}
is_deeply(\@all, [qw(s1__a__b s1__echo s1__zeta s2__echo
                      s2__x_y_6f059e97f7)],
          'pages of 2 give the whole list');
is(scalar @cursors, 2, 'three pages, two cursors');
like($cursors[0], qr/^[A-Za-z0-9_-]+$/, 'cursors are base64url');
$r = mcp(path => '/paged/', session => $ps,
         msg => req(20, 'tools/list', { cursor => $cursors[0] }));
is_deeply(names($r), [qw(s1__zeta s2__echo)], 'a cursor can be replayed');
$r = mcp(path => '/paged/s1', session => $ps,
         msg => req(21, 'tools/list', { cursor => $cursors[0] }));
is($r->{json}{error}{code}, -32602,
   "a cursor of another endpoint's list: -32602");
for my $bad ('garbage!', 'djE6MDoxOjA', '', 'x' x 500) {
    $r = mcp(path => '/paged/', session => $ps,
             msg => req(22, 'tools/list', { cursor => $bad }));
    next if $bad eq '' && $r->{json}{result};     # empty: no cursor
    is($r->{json}{error}{code}, -32602, "invalid cursor '"
       . substr($bad, 0, 12) . "': -32602");
}
$r = mcp(path => '/paged/', session => $ps,
         msg => req(23, 'tools/list', { cursor => 5 }));
is($r->{json}{error}{code}, -32602, 'a number cursor: -32602');

# the tool set changes: old cursors are refused, the list is new
$s2->set_tools([ tool('echo'), tool('x.y'), tool('new') ]);
$s2->notify('notifications/tools/list_changed');
ok($s2->pump_until(sub { $s2->{tools_list_count} >= 2 }, 5), 's2 re-listed');
ok(wait_until(sub {
    my $x = mcp(session => $sid, msg => req(30, 'tools/list'));
    return grep { $_ eq 's2__new' } @{ names($x) };
}, 3), 'the new tool appears in tools/list');
$r = mcp(path => '/paged/', session => $ps,
         msg => req(31, 'tools/list', { cursor => $cursors[1] }));
is($r->{json}{error}{code}, -32602, 'a cursor of an older tool set: -32602');
like($r->{json}{error}{message}, qr/list again/, '... saying what to do');

$s2->disconnect;
ok(wait_until(sub {
    my $x = mcp(session => $sid, msg => req(32, 'tools/list'));
    return !grep { /^s2__/ } @{ names($x) };
}, 3), "a disconnected server's tools are gone from tools/list");
$s1->disconnect;
--- no_error_log
[alert]
[crit]



=== TEST 5: tools/call through either worker: result verbatim, errors relayed, names mapped
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t;
                       server s3 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
location /dots { reverse_mcp_endpoint a1; reverse_mcp_tool_separator -; }
--- test_code
my $on_request = sub {
    my ($s, $msg) = @_;
    return undef unless $msg->{method} eq 'tools/call';
    my $name = $msg->{params}{name};
    if ($name eq 'rich') {
        return { content => [ { type => 'text', text => 'a' },
                              { type => 'image', data => 'AAAA',
                                mimeType => 'image/png' } ],
                 structuredContent => { n => 1.50, big => 12345678901234 },
                 isError => \0, _meta => { x => 'y' } };
    }
    if ($name eq 'fails') {
        return { error => { code => -32099, message => 'it broke',
                            data => { why => [1, 2] } } };
    }
    if ($name eq 'tool_error') {
        return { content => [ { type => 'text', text => 'bad input' } ],
                 isError => \1 };
    }
    if ($name eq 'raw') {
        return { raw => qq({ "jsonrpc" : "2.0",\n  "result" : )
                        . qq({"content":[{"type":"text",)
                        . qq("text":"caf\\u00e9 \\/ \\"q\\""}],\n  "n":1.50e0} )
                        . qq(,"id":$msg->{id}}\n) };
    }
    if ($name eq 'bad_json') {
        return { raw => qq({"jsonrpc":"2.0","id":$msg->{id},)
                        . qq("result":{"a":01}}) };
    }
    return undef;
};
my $s1 = up(name => 's1', on_request => $on_request,
            tools => [ map { tool($_) } qw(echo rich fails tool_error a__b
                                           raw) ]);
my $s2 = up(name => 's2', on_request => $on_request,
            tools => [ tool('echo') ]);
my $sid = session();
my @pids = nginx_worker_pids();

my %served;
for my $i (1 .. 12) {
    my $srv = $i % 2 ? 's1' : 's2';
    my $r = mcp(session => $sid, servers => [ $s1, $s2 ],
                msg => req($i, 'tools/call',
                           { name => "${srv}__echo",
                             arguments => { text => "hi $i \x{e9}" } }));
    is($r->{status}, 200, "call $i: 200");
    is_deeply($r->{json}, { jsonrpc => '2.0', id => $i, result => {
        content => [ { type => 'text', text => "hi $i \x{e9}" } ] } },
        "call $i ($srv): echoed");
}
my ($last) = grep { $_->{method} eq 'tools/call' } reverse @{ $s1->{received} };
is($last->{params}{name}, 'echo', 'the server receives its own tool name');
is_deeply($last->{params}{arguments}, { text => "hi 11 \x{e9}" },
          '... and the arguments');
is_deeply([ sort keys %{ $last->{params} } ], [qw(arguments name)],
          '... and nothing else');

# the raw result text is placed as is (numbers keep their text)
my $r = mcp(session => $sid, servers => [ $s1 ],
            msg => req('r1', 'tools/call', { name => 's1__rich' }));
like($r->{body}, qr/"structuredContent":\{"big":12345678901234,"n":1\.5\}/,
     'the result verbatim');
is($r->{json}{result}{content}[1]{mimeType}, 'image/png', 'image content');
is($r->{json}{id}, 'r1', 'string id');

# a result passes through as the server wrote it: checked, not rebuilt
$r = mcp(session => $sid, servers => [ $s1 ],
         msg => req(45, 'tools/call', { name => 's1__raw' }));
is($r->{body}, qq({"jsonrpc":"2.0","id":45,"result":{"content":[{"type":)
               . qq("text","text":"caf\\u00e9 \\/ \\"q\\""}],\n  "n":1.50e0}}),
   'raw result: the bytes as the server wrote them, with the id rewritten');
is($r->{json}{result}{content}[0]{text}, "caf\x{e9} / \"q\"",
   'raw result: decodes');

$r = mcp(session => $sid, servers => [ $s1 ],
         msg => req(40, 'tools/call', { name => 's1__fails' }));
is_deeply($r->{json}{error}, { code => -32099, message => 'it broke',
                               data => { why => [1, 2] } },
          "the server's error object relayed");
$r = mcp(session => $sid, servers => [ $s1 ],
         msg => req(41, 'tools/call', { name => 's1__tool_error' }));
ok($r->{json}{result}{isError}, 'isError results are results');

$r = mcp(session => $sid, servers => [ $s1 ],
         msg => req(42, 'tools/call', { name => 's1__a__b',
                                        arguments => { text => 'x' } }));
my ($ab) = grep { $_->{method} eq 'tools/call' } reverse @{ $s1->{received} };
is($ab->{params}{name}, 'a__b', 'the first "__" splits: s1 / a__b');

$r = mcp(path => '/mcp/s2', session => $sid, servers => [ $s2 ],
         msg => req(43, 'tools/call', { name => 'echo',
                                        arguments => { text => 'direct' } }));
is($r->{json}{result}{content}[0]{text}, 'direct', '/mcp/s2: echo');
$r = mcp(path => '/dots', session => $sid, servers => [ $s1 ],
         msg => req(44, 'tools/call', { name => 's1-echo',
                                        arguments => { text => 'dash' } }));
is($r->{json}{result}{content}[0]{text}, 'dash', 'separator "-"');

for my $c (['s1__nope', -32602, qr/^Unknown tool: s1__nope$/],
           ['nope', -32602, qr/^Unknown tool: nope$/],
           ['zz__echo', -32602, qr/^Unknown tool: zz__echo$/],
           ['s3__echo', -32001, qr/Server not connected: s3/],
           ['__echo', -32602, qr/Unknown tool/],
           ['s1__', -32602, qr/Unknown tool/])
{
    my ($name, $code, $re) = @$c;
    $r = mcp(session => $sid, servers => [ $s1 ],
             msg => req(50, 'tools/call', { name => $name }));
    is($r->{status}, 200, "$name: 200");
    is($r->{json}{error}{code}, $code, "$name: $code");
    like($r->{json}{error}{message}, $re, "$name: message");
}
$r = mcp(path => '/mcp/s1', session => $sid, servers => [ $s1 ],
         msg => req(51, 'tools/call', { name => 's1__echo' }));
is($r->{json}{error}{code}, -32602, '/mcp/s1 does not take prefixed names');
$r = mcp(session => $sid, msg => req(52, 'tools/call', {}));
is($r->{json}{error}{code}, -32602, 'no name: -32602');
$r = mcp(session => $sid, msg => req(53, 'tools/call'));
is($r->{json}{error}{code}, -32602, 'no params: -32602');

# the caller's credentials stay here
$r = mcp(session => $sid, servers => [ $s1 ],
         headers => [ Authorization => 'Bearer caller-secret',
                      Cookie => 'c=caller-cookie' ],
         msg => req(54, 'tools/call', { name => 's1__echo',
                                        arguments => { text => 'auth' } }));
is($r->{json}{result}{content}[0]{text}, 'auth', 'a call with credentials');
unlike(enc($s1->{received}), qr/caller-secret|caller-cookie/,
       'neither Authorization nor Cookie reach the reverse server');

# the server goes away during a call: a JSON-RPC error, not a hang
my $s3 = up(name => 's3', tools => [ tool('hang') ],
            on_request => sub {
                $_[1]{method} eq 'tools/call' ? { noreply => 1 } : undef });
my $h = mcp_start(session => $sid, servers => [ $s3 ],
                  msg => req(60, 'tools/call', { name => 's3__hang' }));
ok($s3->pump_until(sub { scalar $s3->received('tools/call') }, 5),
   's3 got the call');
$s3->disconnect(1);
$r = mcp_finish($h, 5);
is($r->{status}, 200, 'the server died: 200');
ok($r->{json}{error} && $r->{json}{error}{code} < 0,
   'the server died: a JSON-RPC error (' . ($r->{json}{error}{code} // '')
   . ')');

# invalid JSON in an answer is not passed on: the socket is closed (1007)
my $s4 = up(name => 's3', on_request => $on_request,
            tools => [ tool('bad_json') ]);
$r = mcp(session => $sid, servers => [ $s4 ],
         msg => req(62, 'tools/call', { name => 's3__bad_json' }));
is($r->{json}{error}{code}, -32003, 'invalid JSON in a result: -32003');
unlike($r->{body}, qr/"a":01/, 'invalid JSON in a result: not passed on');
$s1->disconnect;
$s2->disconnect;
--- no_error_log
[alert]
[crit]



=== TEST 6: progress and log messages stream as SSE before the result; setLevel filters
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = up(name => 's1', tools => [ tool('slow') ], on_request => sub {
    my ($s, $msg) = @_;
    return undef unless $msg->{method} eq 'tools/call';
    my $tok = $msg->{params}{_meta}{progressToken};
    $s->{seen_token} = $tok;
    for my $i (1 .. 3) {
        $s->notify('notifications/progress', { progressToken => $tok,
            progress => $i, total => 3, message => "step $i" }) if defined $tok;
    }
    $s->notify('notifications/message', { level => 'info', data => 'fyi' });
    $s->notify('notifications/message', { level => 'error', data => 'oops' });
    return { content => [ { type => 'text', text => 'done' } ] };
});
my $sid = session();
for my $tok ('tok-1', 42) {
    my $r = mcp(session => $sid, servers => [ $s1 ],
                msg => req(1, 'tools/call', { name => 's1__slow',
                     arguments => {}, _meta => { progressToken => $tok } }));
    is($r->{status}, 200, "token $tok: 200");
    like($r->{headers}{'content-type'}, qr{^text/event-stream},
         "token $tok: an SSE stream");
    is($r->{headers}{'x-accel-buffering'}, 'no', 'X-Accel-Buffering: no');
    like($r->{body}, qr/^event: message\ndata: /, 'event: message / data:');
    my @ev = @{ $r->{events} };
    my @progress = grep { ($_->{method} // '') eq 'notifications/progress' }
                   @ev;
    is(scalar @progress, 3, "token $tok: 3 progress events");
    is_deeply([ map { $_->{params}{progressToken} } @progress ],
              [ ($tok) x 3 ], "token $tok: the caller's own token restored");
    is_deeply([ map { $_->{params}{progress} } @progress ], [1, 2, 3],
              'in order');
    is_deeply($ev[-1], { jsonrpc => '2.0', id => 1, result => {
        content => [ { type => 'text', text => 'done' } ] } },
        'the result is the last event');
    isnt($s1->{seen_token}, $tok, 'the server saw a gateway token');
    my @log = grep { ($_->{method} // '') eq 'notifications/message' } @ev;
    is(scalar @log, 2, 'both log messages (no level set)') if $tok eq 'tok-1';
    is(scalar @log, 1, 'only the error (setLevel error)') if $tok eq '42';
    mcp(session => $sid, msg => req(2, 'logging/setLevel',
                                    { level => 'error' }));
}

# no token, but the session asked for log messages: a stream of them
my $r = mcp(session => $sid, servers => [ $s1 ],
            msg => req(3, 'tools/call', { name => 's1__slow' }));
like($r->{headers}{'content-type'}, qr{^text/event-stream},
     'no progress token, logging/setLevel was called: SSE');
is_deeply([ map { $_->{params}{data} // () } @{ $r->{events} } ], ['oops'],
          '... with the log messages at or above the level');
is($r->{json}{result}{content}[0]{text}, 'done', '... and the result');

# a session without logging/setLevel, no token: JSON, notifications dropped
my $plain = session();
$r = mcp(session => $plain, servers => [ $s1 ],
         msg => req(3, 'tools/call', { name => 's1__slow' }));
like($r->{headers}{'content-type'}, qr{^application/json},
     'no progress token, no logging/setLevel: JSON');
is($r->{json}{result}{content}[0]{text}, 'done', '... the result');
# a token, but the client only takes JSON
$r = mcp(session => $plain, servers => [ $s1 ], accept => 'application/json',
         msg => req(4, 'tools/call', { name => 's1__slow',
                                       _meta => { progressToken => 't' } }));
like($r->{headers}{'content-type'}, qr{^application/json},
     'a token and Accept: application/json: JSON');
is($r->{json}{id}, 4, '... the result');
$s1->disconnect;
--- no_error_log
[alert]
[crit]



=== TEST 7: cancellation: the client goes away; notifications/cancelled from any worker; DELETE
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = up(name => 's1', tools => [ tool('hang') ], on_request => sub {
    my ($s, $msg) = @_;
    return { noreply => 1 } if $msg->{method} eq 'tools/call';
    return undef;
});
my $sid = session();
my $cancels = sub { scalar grep { ($_->{method} // '') eq
                                  'notifications/cancelled' }
                           @{ $s1->{received} } };

# 1. the client closes its connection
my $h = mcp_start(session => $sid, servers => [ $s1 ],
                  msg => req(1, 'tools/call', { name => 's1__hang' }));
ok($s1->pump_until(sub { $s1->received('tools/call') == 1 }, 5),
   'the server got the call');
close $h->{sock};
ok($s1->pump_until(sub { $cancels->() == 1 }, 5),
   'client gone: the server gets notifications/cancelled');
my ($c1) = grep { ($_->{method} // '') eq 'notifications/cancelled' }
           @{ $s1->{received} };
my ($call1) = $s1->received('tools/call');
is($c1->{params}{requestId}, $call1->{id},
   '... for the id the gateway used');

# 2. notifications/cancelled on other connections (either worker)
for my $i (1 .. 4) {
    my $id = "c-$i";
    $h = mcp_start(session => $sid, servers => [ $s1 ],
                   msg => req($id, 'tools/call', { name => 's1__hang' }));
    ok($s1->pump_until(sub { $s1->received('tools/call') == 1 + $i }, 5),
       "call $i reached the server");
    my $n = mcp(session => $sid, msg => { jsonrpc => '2.0',
        method => 'notifications/cancelled',
        params => { requestId => $id, reason => 'changed my mind' } });
    is($n->{status}, 202, "cancel $i: 202");
    ok($s1->pump_until(sub { $cancels->() == 1 + $i }, 5),
       "cancel $i: the server gets notifications/cancelled");
    my $r = mcp_finish($h, 5);
    is($r->{status}, 202, "cancel $i: the cancelled POST ends (202, "
                          . 'no response)');
}

# an unknown id, another session's id: nothing happens
my $other = session();
$h = mcp_start(session => $sid, servers => [ $s1 ],
               msg => req(7, 'tools/call', { name => 's1__hang' }));
ok($s1->pump_until(sub { $s1->received('tools/call') == 6 }, 5),
   'call 7 reached the server');
for my $c ([$sid, 8], [$other, 7]) {
    mcp(session => $c->[0], msg => { jsonrpc => '2.0',
        method => 'notifications/cancelled',
        params => { requestId => $c->[1] } });
}
$s1->pump(0.5);
is($cancels->(), 5, 'wrong id or session: not cancelled');
ok(!mcp_poll($h, 0.1, sub { length $_[0] }), '... still waiting');

# 3. DELETE of the session ends its calls
my $r = mcp(method => 'DELETE', session => $sid);
is($r->{status}, 204, 'DELETE: 204');
ok($s1->pump_until(sub { $cancels->() == 6 }, 5),
   'DELETE: the call in flight is cancelled');
$r = mcp_finish($h, 5);
is($r->{status}, 202, '... and its POST ends');
$s1->disconnect;
--- error_log
cancelled by the client
cancelled: the client went away
--- no_error_log
[alert]
[crit]



=== TEST 8: sessions expire when idle; per-agent cap; reverse_mcp_force_mailbox; body in a file
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
reverse_mcp_agent a2 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp {
    reverse_mcp_endpoint a1;
    reverse_mcp_session_timeout 1s;
    reverse_mcp_force_mailbox on;
    client_body_in_file_only on;
}
location /capped {
    reverse_mcp_endpoint a2;
    reverse_mcp_max_sessions 2;
}
--- test_code
my $s1 = up(name => 's1');
my $sid = session();
for my $i (1 .. 4) {
    Time::HiRes::sleep(0.5);
    my $r = mcp(session => $sid, servers => [ $s1 ],
                msg => req($i, 'tools/call', { name => 's1__echo',
                                               arguments => { text => $i } }));
    is($r->{json}{result}{content}[0]{text}, $i,
       "call $i through the mailbox, body from a file; used 0.5 s ago");
}
Time::HiRes::sleep(1.3);
my $r = mcp(session => $sid, msg => req(9, 'ping'));
is($r->{status}, 404, 'idle for 1.3 s (timeout 1 s): 404');

my @s = map { session(path => '/capped') } 1 .. 2;
$r = mcp(path => '/capped', msg => req(1, 'initialize',
                                       { protocolVersion => '2025-06-18' }));
is($r->{status}, 503, 'a third session of a2: 503');
like($r->{json}{error}{message}, qr/reverse_mcp_max_sessions/,
     '... naming the limit');
mcp(path => '/capped', method => 'DELETE', session => $s[0]);
$r = mcp(path => '/capped', msg => req(1, 'initialize',
                                       { protocolVersion => '2025-06-18' }));
is($r->{status}, 200, 'after a DELETE: 200');
$s1->disconnect;
--- error_log
no new session for agent "a2": the agent has reached reverse_mcp_max_sessions
--- no_error_log
[alert]
[crit]



=== TEST 9: sessions survive a reload; calls reach a server the old worker keeps
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = up(name => 's1');
my $sid = session();
my $before = mcp(session => $sid, msg => req(1, 'ping'));
is($before->{status}, 200, 'ping before the reload');
ok(nginx_reload(), 'reload: new workers');
for my $i (1 .. 4) {
    my $r = mcp(session => $sid, servers => [ $s1 ],
                msg => req($i, 'tools/call', { name => 's1__echo',
                                               arguments => { text => $i } }));
    is($r->{json}{result}{content}[0]{text}, $i,
       "call $i after the reload: same session, the old worker's socket");
}
$s1->close(1000, 'bye');
$s1->pump(0.5);
$s1->disconnect;
--- no_error_log
[alert]
[crit]



=== TEST 10: bad endpoint directives
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /mcp {
    reverse_mcp_endpoint a1;
    reverse_mcp_allowed_origins https://a.example.com/path;
}
--- must_die
--- error_log
invalid "reverse_mcp_allowed_origins" value "https://a.example.com/path"



=== TEST 11: bad page size
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /mcp {
    reverse_mcp_endpoint a1;
    reverse_mcp_page_size 0;
}
--- must_die
--- error_log
"reverse_mcp_page_size" must be at least 1



=== TEST 12: the MCP TypeScript SDK client through the endpoint to the SDK demo server
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my @missing = grep { !-f "$main::NodeModules/$_/package.json" }
              qw(@modelcontextprotocol/sdk ws zod);
die "the MCP TypeScript SDK is not installed (missing @missing): run "
    . "`make deps`\n" if @missing;
my $dlog = "$servroot/logs/demo-s1.log";
my $demo = node_start($dlog, 'tools/demo-reverse-server.mjs',
           '--url', "ws://127.0.0.1:$ServerPort/ws",
           '--name', 's1', '--token', 't1');
ok(wait_until(sub {
    my $j = status_json();
    my ($a) = grep { $_->{name} eq 'a1' } @{ $j->{agents} };
    return grep { $_->{name} eq 's1' } @{ $a->{servers} || [] };
}, 15, 0.05), 'the SDK demo server registered')
    or diag(slurp($dlog));

for my $run (1 .. 2) {
    my $clog = "$servroot/logs/sdk-client-$run.log";
    my $pid = node_start($clog, 't/interop/sdk-client.mjs',
                         '--url', "http://127.0.0.1:$ServerPort/mcp",
                         '--server', 's1');
    my $rc = node_wait($pid, 30);
    my $out = slurp($clog);
    is($rc, 0, "run $run: the SDK client passed all its checks")
        or diag($out);
    my ($line) = grep { /^\{/ } split /\n/, $out;
    my $j = eval { dec($line // '') } || {};
    is_deeply($j->{failures}, [], "run $run: no failures");
    is_deeply($j->{aggregate}{tools}, [qw(s1__add s1__echo s1__system_info
                                          s1__time)],
              "run $run: aggregated tool names");
    is_deeply($j->{server}{tools}, [qw(add echo system_info time)],
              "run $run: /mcp/s1 tool names");
    is($j->{aggregate}{add}, '42', "run $run: s1__add 2 + 40");
    is_deeply($j->{aggregate}{addStructured}, { sum => 42 },
              "run $run: structuredContent");
    is($j->{aggregate}{protocolVersion}, '2025-11-25',
       "run $run: the SDK's latest version negotiated");
}
kill 'TERM', $demo;
ok(defined node_wait($demo, 5), 'the demo server stopped');
--- no_error_log
[alert]
[crit]



=== TEST 13: GET stream: list_changed when servers come and go (any worker); it ends with the session
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my @sse = (headers => [Accept => 'text/event-stream']);
my $r = mcp(msg => req(1, 'initialize',
                       { protocolVersion => '2025-06-18', capabilities => {},
                         clientInfo => { name => 't', version => '1' } }));
my $sid = $r->{headers}{'mcp-session-id'};
ok($sid, 'a session');

$r = mcp(method => 'GET', @sse);
is($r->{status}, 400, 'GET without a session: 400');
$r = mcp(method => 'GET', session => 'f' x 32, @sse);
is($r->{status}, 404, 'GET with an unknown session: 404');

my $changes = sub { my @m = $_[0] =~ /notifications\/tools\/list_changed/g;
                    scalar @m };
my @g = map { mcp_start(method => 'GET', session => $sid, @sse) } 1 .. 2;
for my $g (@g) {
    ok(mcp_poll($g, 5, sub { $_[0] =~ /\r\n\r\n/ }), 'GET: headers arrive');
    like($g->{buf}, qr{^HTTP/1.1 200 }, 'GET: 200');
    like($g->{buf}, qr{\r\nContent-Type: text/event-stream\r\n}i,
         'GET: text/event-stream');
    is($changes->($g->{buf}), 0, 'no notification yet');
}

# servers connect (the kernel spreads them over both workers) and leave:
# every stream hears of each change, whichever worker holds it
my @s;
for my $name (qw(s1 s2)) {
    my $s = Test::Nginx::ReverseMCP->new(port => $ServerPort, name => $name,
                                         token => 't');
    $s->connect;
    ok($s->handshake(5), "$name registered");
    push @s, $s;
    for my $g (@g) {
        ok(mcp_poll($g, 5, sub { $changes->($_[0]) >= @s }),
           "list_changed after $name registered");
    }
}

$_->close(1000) for @s;
$_->pump(0.2) for @s;
for my $g (@g) {
    ok(mcp_poll($g, 5, sub { $changes->($_[0]) >= 3 }),
       'list_changed after the servers left');
    like($g->{buf}, qr/event: message\r?\ndata: \{"jsonrpc":"2.0","method":"notifications\/tools\/list_changed"\}/,
         'the notification is a JSON-RPC message in an SSE event');
}

$r = mcp(method => 'DELETE', session => $sid);
is($r->{status}, 204, 'DELETE the session');
for my $g (@g) {
    ok(mcp_poll($g, 5), 'the stream ends with its session');
}
--- no_error_log
[alert]
[crit]



=== TEST 14: access log variables; a call that crossed workers shows its owner pid
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
log_format rmcp '$pid $reverse_mcp_owner_pid $reverse_mcp_agent '
                '$reverse_mcp_server $reverse_mcp_tool $reverse_mcp_method '
                '$reverse_mcp_outcome $reverse_mcp_call_time $status';
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp {
    reverse_mcp_endpoint a1;
    access_log $TEST_NGINX_SERVROOT/logs/mcp.log rmcp;
}
--- test_code
my $s1 = up(name => 's1', tools => [ tool('echo') ]);
my $sid = session();
my $owner = status_json()->{agents}[0]{servers}[0]{owner_pid};

# nginx writes an access log line after the response: read with patience
my $mcplog = sub {
    do { local (@ARGV, $/) = ("$servroot/logs/mcp.log"); <> } // '';
};
my $crossed_in = sub {
    my $log = $mcplog->();
    while ($log =~ /^(\d+) $owner a1 s1 s1__echo tools\/call ok \d+\.\d{3} 200$/mg) {
        return $1 if $1 != $owner;
    }
    return undef;
};

# requests land on either worker: repeat until one crossed
my $crossed;
for my $i (1 .. 30) {
    my $r = mcp(session => $sid, servers => [ $s1 ],
                msg => req($i, 'tools/call',
                           { name => 's1__echo', arguments => { text => "x$i" } }));
    is($r->{json}{result}{content}[0]{text}, "x$i", "call $i answered");
    last if wait_until(sub { $crossed = $crossed_in->() }, 0.3, 0.05);
}
ok($crossed, "a call handled by worker $crossed reached server s1 in worker $owner");

mcp(session => $sid, msg => req(99, 'tools/call', { name => 's9__x' }));
ok(wait_until(sub { $mcplog->() =~ m{^\d+ - a1 - s9__x tools/call error - 200$}m },
              3),
   'a call to a server that is not connected: outcome error, no owner');
mcp(session => $sid, msg => req(100, 'ping'));
ok(wait_until(sub { $mcplog->() =~ m{^\d+ - a1 - - ping ok - 200$}m }, 3),
   'ping: method and outcome');
--- no_error_log
[alert]
[crit]



=== TEST 15: reverse_mcp_endpoint_token: callers need a Bearer token of the list
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location /mcp {
    reverse_mcp_endpoint a1;
    reverse_mcp_endpoint_token token=first-token;
    reverse_mcp_endpoint_token token_sha256=7a35833597e6687c599a0988b7a53b9b6a7ec18b88ca2a8e60f3265c8be6d527;
}
--- test_code
my %init = (protocolVersion => '2025-06-18', capabilities => {},
            clientInfo => { name => 't', version => '1' });
my $r = mcp(msg => req(1, 'initialize', \%init));
is($r->{status}, 401, 'no token: 401');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="reverse-mcp"',
   'WWW-Authenticate: Bearer');
like($r->{json}{error}{message}, qr/no Authorization header/,
     'the JSON-RPC error says why');
$r = mcp(msg => req(1, 'initialize', \%init),
         headers => [Authorization => 'Bearer nope']);
is($r->{status}, 401, 'wrong token: 401');
$r = mcp(msg => req(1, 'initialize', \%init),
         headers => [Authorization => 'Basic Zmlyc3QtdG9rZW4=']);
is($r->{status}, 401, 'Basic: 401');
$r = mcp(msg => req(1, 'initialize', \%init),
         headers => [Authorization => 'Bearer first-token']);
is($r->{status}, 200, 'a literal token: 200');
ok($r->{headers}{'mcp-session-id'}, '... and a session');
$r = mcp(msg => req(2, 'initialize', \%init),
         headers => [Authorization => 'bearer second-token']);
is($r->{status}, 200, 'a hashed token (scheme in any case): 200');
--- error_log
endpoint refused the caller: wrong token
--- no_error_log
first-token
second-token
[alert]



=== TEST 16: reverse_mcp_endpoint_token: a bad parameter
--- http_config
reverse_mcp_zone rmcp:1m;
--- config
location /mcp {
    reverse_mcp_endpoint_token secret;
}
--- must_die
--- error_log
invalid parameter "secret": expected token=, token_file= or token_sha256=



=== TEST 17: a tools/call with the debug log on (the poll timer's debug line read a NULL event owner; found by test/fuzz/endpoint_fuzz.c)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- log_level: debug
--- test_code
my $s1 = up(name => 's1', tools => [ tool('echo') ]);
my $sid = session();
for my $i (1 .. 4) {
    my $r = mcp(session => $sid, servers => [ $s1 ],
                msg => req($i, 'tools/call',
                           { name => 's1__echo',
                             arguments => { text => "hi $i" } }));
    is($r->{status}, 200, "call $i: 200");
    is($r->{json}{result}{content}[0]{text}, "hi $i", "call $i: echoed");
}
--- no_error_log
exited on signal
[alert]
