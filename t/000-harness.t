# Self-test of the test harness (t/lib/Test/Nginx/*.pm).  It does not load
# ngx_http_reverse_mcp_module: plain nginx configs only.  The WebSocket
# client and the scripted reverse MCP server are checked against a
# Mojolicious server (software we did not write) run in a child process.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::WS;
use Test::Nginx::ReverseMCP;
use IO::Socket::INET;
use POSIX ();

no_module();
master_on();
workers(2);

# expanded in configs as $TEST_NGINX_MOJO_PORT (any TEST_NGINX_* env var)
$ENV{TEST_NGINX_MOJO_PORT} = free_port();
my $mojo_pid = start_mojo($ENV{TEST_NGINX_MOJO_PORT});

run_tests();

END {
    if ($mojo_pid) {
        kill 'TERM', $mojo_pid;
        waitpid $mojo_pid, 0;
    }
}

sub start_mojo {
    my ($port) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        $ENV{MOJO_LOG_LEVEL} = 'fatal';
        exec($^X, '-e', mojo_app(), 'daemon', '-l', "http://127.0.0.1:$port")
            or POSIX::_exit(127);

    }
    wait_until(sub {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port)
    }, 15, 0.1) or diag("Mojolicious server did not start on port $port");
    return $pid;
}

# /echo: WebSocket echo (subprotocol "mcp"; "please-ping" makes it send a
#        ping "hb" and it reports pongs as "got-pong:<payload>").
# /gw:   a fake MCP gateway (MCP client): initialize, initialized,
#        paginated tools/list, tools/call echo, an unknown method; then it
#        reports what it saw in a "test/result" notification.
sub mojo_app {
    return <<'_MOJO_';
use Mojolicious::Lite -signatures;
use Mojo::JSON qw(encode_json decode_json);

websocket '/echo' => sub ($c) {
    $c->tx->with_protocols('mcp');
    $c->on(text => sub ($c, $bytes) {
        return $c->send([1, 0, 0, 0, 9, 'hb']) if $bytes eq 'please-ping';
        $c->send({text => $bytes});
    });
    $c->on(binary => sub ($c, $bytes) { $c->send({binary => $bytes}) });
    $c->on(frame => sub ($ws, $f) {
        $ws->send({text => "got-pong:$f->[5]"}) if $f->[4] == 10;
    });
};

websocket '/gw' => sub ($c) {
    my $h = $c->req->headers;
    my %seen = (auth => $h->authorization,
                name_hdr => $h->header('X-MCP-Server-Name'),
                query_name => $c->param('server_name'),
                query_token => $c->param('token'), newline => 1);
    my ($next_id, %pending, $list) = (1);
    my $send = sub ($m) { $c->send({text => encode_json({jsonrpc => '2.0', %$m})}) };
    my $req = sub ($method, $params, $cb) {
        my $id = $next_id++;
        $pending{$id} = $cb;
        $send->({id => $id, method => $method, params => $params});
    };
    my $after_list = sub {
        $req->('tools/call', {name => 'echo', arguments => {text => 'hi'}}, sub ($r) {
            $seen{call} = $r->{result};
            $req->('foo/bar', {}, sub ($r) {
                $seen{unknown} = $r;
                $send->({method => 'test/result', params => \%seen});
            });
        });
    };
    $list = sub ($cursor, $acc) {
        $req->('tools/list', {defined $cursor ? (cursor => $cursor) : ()}, sub ($r) {
            push @$acc, map { $_->{name} } @{ $r->{result}{tools} };
            $seen{pages}++;
            return $list->($r->{result}{nextCursor}, $acc)
                if $r->{result}{nextCursor};
            return $send->({method => 'test/relisted', params => {tools => $acc}})
                if $seen{tools};
            $seen{tools} = $acc;
            $after_list->();
        });
    };
    $c->on(text => sub ($c, $bytes) {
        $seen{newline} = 0 unless $bytes =~ /\n\z/;
        my $m = decode_json($bytes);
        if (defined $m->{method}) {
            return $send->({id => $m->{id}, result => {echo => $m->{params}}})
                if exists $m->{id};
            return $list->(undef, [])
                if $m->{method} eq 'notifications/tools/list_changed';
            return $c->finish(4000, 'bye') if $m->{method} eq 'test/close';
            return;
        }
        my $cb = delete $pending{ $m->{id} };
        $cb->($m) if $cb;
    });
    $req->('initialize', {protocolVersion => '2025-06-18', capabilities => {},
                          clientInfo => {name => 'mojo-gw', version => '0'}}, sub ($r) {
        $seen{init} = $r->{result};
        $send->({method => 'notifications/initialized'});
        $list->(undef, []);
    });
};

app->start;
_MOJO_
}

__DATA__

=== TEST 1: plain return, exact body and headers
--- config
location = /hello {
    return 200 "hello";
}
--- request
GET /hello
--- response_body chomp
hello
--- response_headers
Content-Type: text/plain
Content-Length: 5
!X-Nope



=== TEST 2: location returning 401
--- config
location /secret {
    if ($http_authorization != "Bearer t") {
        return 401;
    }
    return 200 "auth ok: $http_x_test\n";
}
--- request
GET /secret
--- error_code: 401
--- response_body_like: 401 Authorization Required
--- response_headers_like
Content-Type: ^text/html



=== TEST 3: request arrays, more_headers, error_log of a 404
--- config
location /secret {
    if ($http_authorization != "Bearer t") {
        return 401;
    }
    return 200 "auth ok: $http_x_test\n";
}
--- request eval
["GET /secret", "GET /secret", "GET /missing-file"]
--- more_headers eval
["Authorization: Bearer t\nX-Test: one", "", ""]
--- error_code eval
[200, 401, 404]
--- response_body_like eval
[qr/^auth ok: one$/m, qr/401/, qr/404 Not Found/]
--- error_log
No such file or directory
--- no_error_log
[emerg]
[crit]



=== TEST 4: request body gets a Content-Length; Host and Connection are set
--- config
location = /len {
    return 200 "len=$http_content_length conn=$http_connection host=$host";
}
--- request
POST /len
hello world
--- response_body: len=11 conn=close host=localhost



=== TEST 5: raw_request, HTTP/1.0
--- config
location = /raw {
    return 200 "raw ok $server_protocol";
}
--- raw_request eval
"GET /raw HTTP/1.0\r\nHost: x\r\n\r\n"
--- response_body: raw ok HTTP/1.0



=== TEST 6: user_files (html/ and ../conf/), chunked response
--- user_files
>>> index.html
hello world
>>> ../conf/extra.conf
location = /extra {
    return 200 "from extra.conf";
}
--- config
include extra.conf;
location /sub/ {
    alias $TEST_NGINX_HTML_DIR/;
    sub_filter 'world' 'there';
}
--- request eval
["GET /index.html", "GET /sub/index.html", "GET /extra"]
--- response_body eval
["hello world\n", "hello there\n", "from extra.conf"]
--- response_headers eval
["Content-Length: 12", "Transfer-Encoding: chunked\n!Content-Length", ""]



=== TEST 7: must_die reports the bad directive and its line
--- config
location = /t {
    return 200;
}
bogus_directive on;
--- must_die
--- error_log eval
qr/unknown directive "bogus_directive" in \S+\/conf\/nginx\.conf:\d+/
--- test_code
my ($line) = error_log_since_start() =~ /nginx\.conf:(\d+)/;
ok($line, "a line number is reported");
open my $fh, '<', "$servroot/conf/nginx.conf" or die $!;
my @conf = <$fh>;
like($conf[$line - 1], qr/^bogus_directive on;/,
     "line $line of the generated nginx.conf is the bad directive");



=== TEST 8: test_code helpers
--- config
location = /t {
    return 200 "x=$arg_x h=$http_x_h m=$request_method";
}
location = /json {
    default_type application/json;
    return 200 '{"agents":[{"name":"a"}],"n":2}';
}
--- test_code
my $r = http_get('/t?x=1', headers => { 'X-H' => 'v' });
is($r->{status}, 200, 'http_get status');
is($r->{body}, 'x=1 h=v m=GET', 'http_get body');
is($r->{headers}{'content-type'}, 'text/plain', 'lowercase header names');
$r = http_request('POST', '/t?x=2', 'abc', [ 'X-H' => 'w' ]);
is($r->{body}, 'x=2 h=w m=POST', 'http_request with a body');
my $j = status_json('/json');
is_deeply($j->{agents}, [ { name => 'a' } ], 'status_json decodes');
ok(!eval { status_json('/nope'); 1 }, 'status_json dies on a 404');
like($@, qr/status 404/, '... with the status in the message');
ok(wait_until(sub { 1 }, 1), 'wait_until: true');
ok(!wait_until(sub { 0 }, 0.2, 0.05), 'wait_until: false after the timeout');
is($port, $ServerPort, '$port is the server port');
is($port, $ENV{TEST_NGINX_SERVER_PORT}, 'TEST_NGINX_SERVER_PORT');
ok($port2 && $port3 && $port2 != $port && $port3 != $port2, 'distinct ports');
ok(-f "$servroot/conf/nginx.conf", '$servroot');
is($block->name, 'TEST 8: test_code helpers', '$block');
my $dead = http_get('/', port => free_port(), timeout => 1);
is($dead->{status}, 0, 'connect failure: status 0');
like($dead->{error}, qr/connect/, 'connect failure: error message');



=== TEST 9: master + 2 workers, reload keeps serving
--- config
location = /pid {
    return 200 "$pid";
}
--- test_code
my $master = nginx_master_pid();
ok($master, 'master pid');
my @w = nginx_worker_pids();
is(scalar @w, 2, 'two workers');
my %old = map { $_ => 1 } @w;
ok($old{ http_get('/pid')->{body} }, 'request served by a worker');
ok(nginx_reload(), 'reload');
my @n = nginx_worker_pids();
is(scalar @n, 2, 'two new workers');
ok(!grep({ $old{$_} } @n), 'all workers replaced');
is(nginx_master_pid(), $master, 'same master');
my $r = http_get('/pid');
is($r->{status}, 200, 'still serving after reload');
ok(!$old{ $r->{body} }, 'served by a new worker');
--- error_log
reconfiguring
--- no_error_log
[alert]



=== TEST 10: single process mode (per-block master_off)
--- master_off
--- config
location = /pid {
    return 200 "$pid";
}
--- test_code
is(http_get('/pid')->{body}, nginx_master_pid(), 'served by the only process');
is(scalar(nginx_worker_pids()), 0, 'no worker processes');



=== TEST 11: error_log lines (strings and regexps), log_level override
--- log_level: debug
--- config
location = /t {
    return 200 "ok";
}
--- request
GET /t
--- error_log eval
[qr/http request line: "GET \/t HTTP\/1\.1"/, "http finalize request"]
--- no_error_log eval
[qr/\[error\]/]



=== TEST 12: a skipped block is reported as a TAP skip
--- SKIP: demonstrates TAP skip
--- config
this would not parse;



=== TEST 13: WS client against a Mojolicious echo server
--- test_code
my $mport = $ENV{TEST_NGINX_MOJO_PORT};
my $ws = Test::Nginx::WS->connect(port => $mport, path => '/echo',
                                  protocols => [ 'x', 'mcp' ]);
is($ws->status, 101, 'handshake status');
ok($ws->ok, 'accept key verified');
is($ws->protocol, 'mcp', 'subprotocol');

ok($ws->send_text('hello'), 'send_text');
my $m = $ws->recv_message(3);
is($m->{opcode}, 1, 'text echo opcode');
is($m->{payload}, 'hello', 'text echo');

$ws->send_text("h\x{e9}llo \x{263a}");
is($ws->recv_message(3)->{payload}, "h\xc3\xa9llo \xe2\x98\xba",
   'characters are sent as UTF-8');

my $bin = join '', map { chr } 0 .. 255;
$ws->send_binary($bin);
$m = $ws->recv_message(3);
is($m->{opcode}, 2, 'binary echo opcode');
is($m->{payload}, $bin, 'binary echo');

for my $len (125, 126, 300, 65535, 65536, 70000) {
    $ws->send_text('x' x $len);
    is(length($ws->recv_message(5)->{payload} // ''), $len,
       "$len byte message");
}

$ws->send_text('hel', fin => 0);
$ws->send_frame(0, 'lo, ', fin => 0);
$ws->send_frame(0, 'world');
is($ws->recv_message(3)->{payload}, 'hello, world', 'fragmented message');

$ws->send_text('masked key', mask_key => "\x01\x02\x03\x04");
is($ws->recv_message(3)->{payload}, 'masked key', 'explicit mask key');

$ws->send_ping('p1');
my $f = $ws->recv_frame(3);
is($f->{opcode}, 10, 'pong frame');
is($f->{payload}, 'p1', 'pong payload');
ok($f->{fin} && !$f->{masked}, 'server frame: fin, unmasked');

$ws->send_text('please-ping');
is($ws->recv_message(3)->{payload}, 'got-pong:hb', 'auto_pong answers pings');
is_deeply($ws->{pings}, ['hb'], 'pings recorded');

ok(!defined $ws->recv_frame(0.3), 'recv_frame: undef on timeout');

$ws->send_close(4001, 'bye');
my ($code, $reason) = $ws->recv_close(3);
is($code, 4001, 'close code echoed');
is($reason, 'bye', 'close reason echoed');
ok($ws->is_eof(3), 'server closed the TCP connection');
is_deeply($ws->recv_frame(1), { eof => 1 }, 'recv_frame after EOF');

# handshake details
$ws = Test::Nginx::WS->connect(port => $mport, path => '/echo',
                               key => 'dGhlIHNhbXBsZSBub25jZQ==');
is($ws->headers->{'sec-websocket-accept'}, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
   'RFC 6455 sample key');
ok(!defined $ws->protocol, 'no subprotocol when none offered');
$ws->send_close();
is(($ws->recv_close(3))[0], 1005, 'empty close frame');
$ws->close;

$ws = Test::Nginx::WS->connect(port => $mport, path => '/echo');
$ws->send_text('before reset');
is($ws->recv_message(3)->{payload}, 'before reset', 'echo before RST');
$ws->shutdown_hard;
ok(!$ws->sock, 'shutdown_hard closes the socket');

$ws = Test::Nginx::WS->connect(port => $mport, path => '/nope');
is($ws->status, 404, 'failed handshake: status');
ok(!$ws->ok, 'failed handshake: not ok');
like($ws->body, qr/\S/, 'failed handshake: body read');

$ws = Test::Nginx::WS->connect(port => free_port(), timeout => 1);
is($ws->status, 0, 'connection refused: status 0');
ok($ws->error, 'connection refused: error set');



=== TEST 14: WS over TLS through an nginx proxy (generated certificates)
--- config
listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2 ssl;
ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
location /echo {
    proxy_pass http://127.0.0.1:$TEST_NGINX_MOJO_PORT;
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection "upgrade";
}
--- test_code
ok(-s "$cert_dir/ca.crt" && -s "$cert_dir/server.key", 'certificates');
my $ws = Test::Nginx::WS->connect(port => $port2, path => '/echo', ssl => 1,
                                  ssl_ca => "$cert_dir/ca.crt");
is($ws->status, 101, 'TLS handshake + upgrade through nginx');
ok($ws->ok, 'accept key verified');
$ws->send_text('over tls');
is($ws->recv_message(3)->{payload}, 'over tls', 'echo over TLS');
$ws->send_text('y' x 100000);
is(length $ws->recv_message(5)->{payload}, 100000, 'large message over TLS');
$ws->send_close(1000);
is(($ws->recv_close(3))[0], 1000, 'close over TLS');

# (Mojolicious itself parses bytes pipelined after the upgrade request as
# a new HTTP request; nginx's upgrade proxy forwards them as WS data.)
$ws = Test::Nginx::WS->connect(port => $port2, path => '/echo', ssl => 1,
    ssl_ca => "$cert_dir/ca.crt",
    extra_raw => Test::Nginx::WS::encode_frame(opcode => 1,
                                               payload => 'pipelined'));
is($ws->recv_message(3)->{payload}, 'pipelined',
   'frame pipelined with the handshake (extra_raw)');
$ws->shutdown_hard;

$ws = Test::Nginx::WS->connect(port => $port2, path => '/echo', ssl => 1,
                               ssl_verify => 1, ssl_ca => '/dev/null');
is($ws->status, 0, 'verification against the wrong CA fails');

my $r = http_get('/echo', port => $port2, ssl => 1,
                 ssl_ca => "$cert_dir/ca.crt");
is($r->{status}, 404, 'plain HTTPS request via http_get');



=== TEST 15: ReverseMCP against a Mojolicious fake gateway
--- test_code
my @tools = map { { name => $_, description => "tool $_",
                    inputSchema => { type => 'object' } } } qw(echo a b);
my $s = Test::Nginx::ReverseMCP->new(port => $ENV{TEST_NGINX_MOJO_PORT},
    path => '/gw', name => 'srv 1', token => 's3cr3t', page_size => 2,
    tools => \@tools);
is($s->connect, 101, 'connect');
ok($s->handshake(5), 'handshake: initialize, initialized, tools/list');
is($s->{init_params}{clientInfo}{name}, 'mojo-gw', 'init_params recorded');
is($s->{tools_list_count}, 1, 'one complete listing');

ok($s->pump_until(sub { $s->received('test/result') }, 5), 'gateway done');
my ($res) = $s->received('test/result');
my $p = $res->{params};
is_deeply($p->{tools}, [qw(echo a b)], 'all pages listed');
is($p->{pages}, 2, 'paginated in 2 pages');
is($p->{init}{protocolVersion}, '2025-06-18', 'protocolVersion answered');
is($p->{init}{serverInfo}{name}, 'fake', 'serverInfo answered');
is_deeply($p->{call}, { content => [ { type => 'text', text => 'hi' } ] },
          'tools/call echo');
is($p->{unknown}{error}{code}, -32601, 'unknown method: -32601');
is($p->{auth}, 'Bearer s3cr3t', 'token in Authorization header');
is($p->{name_hdr}, 'srv 1', 'name in X-MCP-Server-Name');
is($p->{query_name}, 'srv 1', 'name in query (escaped)');
is($p->{query_token}, 's3cr3t', 'token in query');
is($p->{newline}, 1, 'every frame ends with a newline');

my $id = $s->request('test/echo', { x => 1 });
is_deeply($s->wait_response($id, 3)->{result}, { echo => { x => 1 } },
          'request + wait_response');

$s->set_tools([ @tools[0, 1] ]);
$s->notify('notifications/tools/list_changed');
ok($s->pump_until(sub { $s->received('test/relisted') }, 5), 'relisted');
is_deeply(($s->received('test/relisted'))[0]{params}{tools}, [qw(echo a)],
          'new tool list');
is($s->{tools_list_count}, 2, 'two complete listings');

$s->notify('test/close');
$s->pump(5);
ok($s->{closed}, 'closed by the gateway');
is($s->{close_code}, 4000, 'close code');
is($s->{close_reason}, 'bye', 'close reason');



=== TEST 16: test_code may stop nginx itself (graceful shutdown tests)
--- config
location = /t {
    return 200 "ok";
}
--- test_code
is(http_get('/t')->{status}, 200, 'running');
kill 'QUIT', nginx_master_pid();
ok(wait_until(sub { http_get('/t', timeout => 1)->{status} == 0 }, 5),
   'no longer serving after SIGQUIT');
--- error_log
gracefully shutting down
