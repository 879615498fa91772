# The WebSocket opening handshake of the connector: every HTTP refusal
# before the upgrade (exact status, extra headers, log line and level,
# handshakes_refused counter, registry untouched), every authentication
# path (token=, token_file=, token_sha256=, no_auth, header vs query,
# reverse_mcp_query_token off), the agent from a variable, duplicate
# reject, max_servers, successful upgrades (accept key, subprotocol,
# header spelling), tokens kept out of the logs, HTTP/2, and nginx access
# control in the same location.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::WS;
use Test::Nginx::ReverseMCP;
use Digest::SHA ();

master_on();
workers(2);

run_tests();


# ------------------------------------------------------------------------
# helpers (test_code runs in package main)
# ------------------------------------------------------------------------

# RFC 6455 section 1.3 sample key and its accept value
sub sample_key    { 'dGhlIHNhbXBsZSBub25jZQ==' }
sub sample_accept { 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=' }

# A complete, valid upgrade request to /ws (or $o{path}) sent with
# http_request, unless changed by:
#   method, path, version (HTTP version), body,
#   drop => [header names to leave out],
#   set  => [name => value, ...] (replaces a header of the same name,
#           case-insensitively, or is appended)
sub upgrade_request {
    my (%o) = @_;
    my @h = (Upgrade => 'websocket', Connection => 'Upgrade',
             'Sec-WebSocket-Key' => sample_key(),
             'Sec-WebSocket-Version' => '13');
    my %drop = map { lc($_) => 1 } @{ $o{drop} || [] };
    my @set = @{ $o{set} || [] };
    my %set;
    for (my $i = 0; $i < @set; $i += 2) {
        $set{ lc $set[$i] } = $set[$i + 1];
    }
    my @out;
    while (my ($k, $v) = splice @h, 0, 2) {
        next if $drop{ lc $k };
        push @out, $k => exists $set{ lc $k } ? delete $set{ lc $k } : $v;
    }
    for (my $i = 0; $i < @set; $i += 2) {
        push @out, $set[$i] => $set[$i + 1] if exists $set{ lc $set[$i] };
    }
    return http_request($o{method} // 'GET', $o{path} // '/ws', $o{body},
                        \@out, http_version => $o{version} // '1.1',
                        timeout => 3);
}

sub counters { status_json()->{counters} }

sub agent_of {
    my ($j, $name) = @_;
    my ($a) = grep { $_->{name} eq $name } @{ $j->{agents} };
    return $a;
}

sub server_names {
    my ($agent) = @_;
    my $a = agent_of(status_json(), $agent // 'a1') or return '';
    return join ',', map { $_->{name} } @{ $a->{servers} };
}

# waits until the registry of the agent lists exactly these servers
sub wait_servers {
    my ($want, $agent, $timeout) = @_;
    my $ok = wait_until(sub { server_names($agent) eq $want }, $timeout // 5,
                        0.05);
    is(server_names($agent), $want,
       "registry of " . ($agent // 'a1') . ": [$want]");
    return $ok;
}

# log text appended since $off (a byte offset of error_log_since_start)
sub log_since { substr(error_log_since_start(), $_[0]) }

# asserts that one line in the log since $off matches
# "[level] ... reverse_mcp: $text, client: ..."
sub log_has {
    my ($off, $level, $text, $name) = @_;
    my $re = qr/\[\Q$level\E\] \d+#\d+: \*\d+ reverse_mcp: \Q$text\E, client: /;
    my $ok = wait_until(sub { log_since($off) =~ $re }, 2, 0.05);
    ok($ok, "$name: [$level] reverse_mcp: $text")
        or diag("log since the request:\n" . log_since($off));
}

# One refused handshake.  %c: name, req (upgrade_request args), or ws
# (Test::Nginx::WS->connect args), status, headers ({ name => exact value
# }), level, log (text after "reverse_mcp: "), extra_log ([level, text]).
sub refused {
    my (%c) = @_;
    my $name = $c{name};
    my $before = counters()->{handshakes_refused};
    my $off = length error_log_since_start();

    my ($status, $h);
    if ($c{ws}) {
        my $ws = Test::Nginx::WS->connect(timeout => 3, %{ $c{ws} });
        ($status, $h) = ($ws->status, $ws->headers);
        $ws->close;
    } else {
        my $r = upgrade_request(%{ $c{req} || {} });
        ($status, $h) = ($r->{status}, $r->{headers});
    }

    is($status, $c{status}, "$name: status $c{status}");
    ok(!exists $h->{'sec-websocket-accept'}, "$name: no Sec-WebSocket-Accept");
    for my $k (sort keys %{ $c{headers} || {} }) {
        is($h->{ lc $k }, $c{headers}{$k}, "$name: $k: $c{headers}{$k}");
    }
    if ($c{status} == 401 && !exists $c{headers}{'WWW-Authenticate'}) {
        is($h->{'www-authenticate'}, 'Bearer realm="reverse-mcp"',
           "$name: WWW-Authenticate");
    }
    log_has($off, $c{level}, $c{log}, $name);
    log_has($off, @{ $c{extra_log} }, $name) if $c{extra_log};
    is(counters()->{handshakes_refused}, $before + 1,
       "$name: handshakes_refused + 1");
}

# A raw WebSocket connection that got its 101 and then the gateway's
# initialize request; closes it with 1000 and expects the echo.
sub upgraded {
    my ($ws, $name) = @_;
    is($ws->status, 101, "$name: 101");
    ok($ws->ok, "$name: Sec-WebSocket-Accept matches the key");
    my $m = $ws->recv_message(3);
    like($m && $m->{payload}, qr/"method":"initialize"/,
         "$name: the gateway sends initialize");
    $ws->send_close(1000);
    my ($code) = $ws->recv_close(3);
    is($code, 1000, "$name: close 1000 echoed");
    $ws->close;
}

# a registered reverse server; dies unless 101 + complete MCP handshake
sub register {
    my (%o) = @_;
    my $s = Test::Nginx::ReverseMCP->new(
        tools => [ { name => 'echo', description => 'Echo',
                     inputSchema => { type => 'object' } } ],
        %o);
    my $st = $s->connect;
    die "$o{name}: handshake status $st, expected 101\n" unless $st == 101;
    die "$o{name}: MCP handshake did not complete\n" unless $s->handshake(5);
    return $s;
}

# the log text must not contain SECRETVALUE (shows the lines that do)
sub no_secret {
    my ($text, $what) = @_;
    my @bad = grep { /SECRETVALUE/ } split /\n/, $text;
    ok(!@bad, "$what: no SECRETVALUE") or diag(join "\n", @bad);
}

# closes a reverse server cleanly (close frame, echo, TCP close)
sub bye {
    my ($s) = @_;
    return unless $s && $s->ws;
    unless ($s->{closed}) {
        $s->close(1000);
        $s->pump_until(sub { $s->{closed} }, 3);
    }
    $s->disconnect;
}

__DATA__

=== TEST 1: every refusal before the upgrade: status, headers, log line, counter; the registry is untouched
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    server s2 token=t2;
    server off1 token=toff disabled;
}
--- config
location /ws {
    reverse_mcp_connector a1;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
# s1 is connected and registered during all the refusals below
my $s1 = register(name => 's1', token => 't1', via => 'header');
ok(wait_until(sub { server_names() eq 's1' }, 5, 0.05), 's1 registered');
my $j0 = status_json();
my $c0 = $j0->{counters};
is($c0->{handshakes}, 1, 'one handshake');
is($c0->{handshakes_refused}, 0, 'no refusal yet');

my @auth = (set => [ 'X-MCP-Server-Name' => 's1',
                     Authorization => 'Bearer t1' ]);
my $hs = 'refused WebSocket handshake';
my %u426 = (Upgrade => 'websocket', 'Sec-WebSocket-Version' => '13');

my @cases = (
    { name => 'HTTP/1.0', req => { @auth, version => '1.0' },
      status => 400, level => 'info',
      log => "$hs: WebSocket needs HTTP/1.1 (400)" },
    { name => 'request body (Content-Length)', req => { @auth, body => 'hello' },
      status => 400, level => 'info',
      log => "$hs: WebSocket handshake must not have a body (400)" },
    { name => 'request body (chunked)',
      req => { set => [ 'X-MCP-Server-Name' => 's1',
                        Authorization => 'Bearer t1',
                        'Transfer-Encoding' => 'chunked' ],
               body => "5\r\nhello\r\n0\r\n\r\n" },
      status => 400, level => 'info',
      log => "$hs: WebSocket handshake must not have a body (400)" },
    { name => 'no Upgrade header', req => { @auth, drop => ['Upgrade'] },
      status => 426, headers => \%u426, level => 'info',
      log => "$hs: \"Upgrade: websocket\" header is required (426)" },
    { name => 'Upgrade: h2c',
      req => { set => [ Upgrade => 'h2c', 'X-MCP-Server-Name' => 's1',
                        Authorization => 'Bearer t1' ] },
      status => 426, headers => \%u426, level => 'info',
      log => "$hs: \"Upgrade: websocket\" header is required (426)" },
    { name => 'Connection: keep-alive',
      req => { set => [ Connection => 'keep-alive',
                        'X-MCP-Server-Name' => 's1',
                        Authorization => 'Bearer t1' ] },
      status => 400, level => 'info',
      log => "$hs: \"Connection: Upgrade\" header is required (400)" },
    { name => 'no Connection header (ws client)',
      ws => { path => '/ws', no_connection => 1,
              headers => [ 'X-MCP-Server-Name' => 's1',
                           Authorization => 'Bearer t1' ] },
      status => 400, level => 'info',
      log => "$hs: \"Connection: Upgrade\" header is required (400)" },
    { name => 'Sec-WebSocket-Version: 8',
      req => { set => [ 'Sec-WebSocket-Version' => '8',
                        'X-MCP-Server-Name' => 's1',
                        Authorization => 'Bearer t1' ] },
      status => 426, headers => \%u426, level => 'info',
      log => "$hs: \"Sec-WebSocket-Version: 13\" is required (426)" },
    { name => 'no Sec-WebSocket-Version',
      req => { @auth, drop => ['Sec-WebSocket-Version'] },
      status => 426, headers => \%u426, level => 'info',
      log => "$hs: \"Sec-WebSocket-Version: 13\" is required (426)" },
    { name => 'no Sec-WebSocket-Key',
      req => { @auth, drop => ['Sec-WebSocket-Key'] },
      status => 400, level => 'info',
      log => "$hs: missing or invalid Sec-WebSocket-Key (400)" },
    (map {
        my $k = $_;
        { name => "Sec-WebSocket-Key \"$k\"",
          req => { set => [ 'Sec-WebSocket-Key' => $k,
                            'X-MCP-Server-Name' => 's1',
                            Authorization => 'Bearer t1' ] },
          status => 400, level => 'info',
          log => "$hs: missing or invalid Sec-WebSocket-Key (400)" }
     } 'abc', 'dGhlIHNhbXBsZSBub25jZQAA', 'dGhlIHNhbXBsZSBub25jZQ=',
       'dGhlIHNhbXBsZSBub25jZQ===', 'dGhlIHNhbX!sZSBub25jZQ==',
       'dGhlIHNhbXBsZSBub25jZSBub25jZQ=='),
    { name => 'POST', req => { @auth, method => 'POST' },
      status => 405, headers => { Allow => 'GET' }, level => 'info',
      log => "$hs: WebSocket handshake must use GET (405)" },
    { name => 'no server name',
      req => { set => [ Authorization => 'Bearer t1' ] },
      status => 400, level => 'info',
      log => "$hs: server name required: send the X-MCP-Server-Name "
             . "header or ?server_name= (400)" },
    { name => 'empty server name header and no query',
      req => { set => [ 'X-MCP-Server-Name' => '',
                        Authorization => 'Bearer t1' ] },
      status => 400, level => 'info',
      log => "$hs: server name required: send the X-MCP-Server-Name "
             . "header or ?server_name= (400)" },
    { name => 'server name "a b" (header)',
      req => { set => [ 'X-MCP-Server-Name' => 'a b',
                        Authorization => 'Bearer t1' ] },
      status => 400, level => 'info',
      log => "$hs: invalid server name (400)" },
    { name => 'server name "a b" (query)',
      req => { path => '/ws?server_name=a%20b&token=t1' },
      status => 400, level => 'info',
      log => "$hs: invalid server name (400)" },
    { name => 'server name "x__y"',
      req => { set => [ 'X-MCP-Server-Name' => 'x__y',
                        Authorization => 'Bearer t1' ] },
      status => 400, level => 'info',
      log => "$hs: invalid server name (400)" },
    { name => 'server name of 65 characters',
      req => { set => [ 'X-MCP-Server-Name' => 'a' x 65,
                        Authorization => 'Bearer t1' ] },
      status => 400, level => 'info',
      log => "$hs: invalid server name (400)" },
    { name => 'unknown server',
      req => { set => [ 'X-MCP-Server-Name' => 'nope',
                        Authorization => 'Bearer t1' ] },
      status => 403, level => 'warn',
      log => 'refused server "nope": server is not registered for this '
             . 'agent (403)' },
    { name => 'the header name wins over ?server_name=',
      req => { path => '/ws?server_name=s1',
               set => [ 'X-MCP-Server-Name' => 'nope',
                        Authorization => 'Bearer t1' ] },
      status => 403, level => 'warn',
      log => 'refused server "nope": server is not registered for this '
             . 'agent (403)' },
    { name => 'disabled server (right token)',
      req => { set => [ 'X-MCP-Server-Name' => 'off1',
                        Authorization => 'Bearer toff' ] },
      status => 403, level => 'warn',
      log => 'refused server "off1": server is disabled (403)' },
    { name => 'no token',
      req => { set => [ 'X-MCP-Server-Name' => 's1' ] },
      status => 401, level => 'warn',
      log => 'refused server "s1": token required (401)' },
    { name => 'wrong token (header)',
      req => { set => [ 'X-MCP-Server-Name' => 's1',
                        Authorization => 'Bearer wrong' ] },
      status => 401, level => 'warn',
      log => 'refused server "s1": wrong token (401)' },
    { name => 'another server\'s token (header)',
      req => { set => [ 'X-MCP-Server-Name' => 's1',
                        Authorization => 'Bearer t2' ] },
      status => 401, level => 'warn',
      log => 'refused server "s1": wrong token (401)' },
    { name => 'Bearer without a token',
      req => { set => [ 'X-MCP-Server-Name' => 's1',
                        Authorization => 'Bearer' ] },
      status => 401, level => 'warn',
      log => 'refused server "s1": Authorization header is not '
             . '"Bearer <token>" (401)' },
    { name => 'wrong token (query)',
      req => { path => '/ws?server_name=s1&token=wrong' },
      status => 401, level => 'warn',
      log => 'refused server "s1": wrong token (401)' },
    { name => 'Authorization: Basic',
      req => { set => [ 'X-MCP-Server-Name' => 's1',
                        Authorization => 'Basic czE6dDE=' ] },
      status => 401, level => 'warn',
      log => 'refused server "s1": Authorization header is not '
             . '"Bearer <token>" (401)' },
    { name => 'Authorization: Basic + right query token',
      req => { path => '/ws?token=t1',
               set => [ 'X-MCP-Server-Name' => 's1',
                        Authorization => 'Basic czE6dDE=' ] },
      status => 401, level => 'warn',
      log => 'refused server "s1": Authorization header is not '
             . '"Bearer <token>" (401)' },
    { name => 'wrong header token + right query token (header wins)',
      req => { path => '/ws?server_name=s1&token=t1',
               set => [ Authorization => 'Bearer wrong' ] },
      status => 401, level => 'warn',
      log => 'refused server "s1": wrong token (401)' },
);

for my $c (@cases) {
    refused(%$c);
}

my $j1 = status_json();
is_deeply($j1->{agents}, $j0->{agents},
          'registry unchanged after all the refusals (s1 still there)');
is($j1->{counters}{handshakes_refused}, scalar @cases,
   'handshakes_refused counts every refusal');
is($j1->{counters}{handshakes}, 1, 'handshakes unchanged');
is($j1->{counters}{registrations}, 1, 'registrations unchanged');
is($j1->{counters}{connections}, 1, 'connections unchanged');

ok($s1->pump(0.3) == 0 && !$s1->{closed}, 's1 still connected, nothing sent');
bye($s1);
wait_servers('');
--- no_error_log
[crit]
[alert]



=== TEST 2: successful upgrades: 101, Sec-WebSocket-Accept, the mcp subprotocol, header spelling
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
}
--- config
location /ws {
    reverse_mcp_connector a1;
    reverse_mcp_handshake_timeout 2s;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
my @id = (headers => [ 'X-MCP-Server-Name' => 's1',
                       Authorization => 'Bearer t1' ]);
my $n = 0;

# the RFC 6455 sample key
my $ws = Test::Nginx::WS->connect(path => '/ws', key => sample_key(), @id);
is($ws->headers->{'sec-websocket-accept'}, sample_accept(),
   'Sec-WebSocket-Accept of the RFC 6455 sample key');
is(lc($ws->headers->{upgrade} // ''), 'websocket', 'Upgrade: websocket');
is(lc($ws->headers->{connection} // ''), 'upgrade', 'Connection: upgrade');
ok(!exists $ws->headers->{'sec-websocket-protocol'},
   'no subprotocol offered: no Sec-WebSocket-Protocol');
upgraded($ws, 'sample key'); $n++;

# a random key
$ws = Test::Nginx::WS->connect(path => '/ws', @id);
upgraded($ws, 'random key'); $n++;

# subprotocols
for my $p ([ 'mcp', 'mcp' ], [ [ 'foo', 'mcp' ], 'mcp' ],
           [ [ 'mcp', 'bar' ], 'mcp' ], [ 'foo', undef ],
           [ [ 'mcpx', 'xmcp' ], undef ])
{
    my ($offer, $want) = @$p;
    my $label = ref $offer ? join(', ', @$offer) : $offer;
    $ws = Test::Nginx::WS->connect(path => '/ws', protocols => $offer, @id);
    is($ws->protocol, $want, "offered \"$label\": Sec-WebSocket-Protocol "
                             . ($want // 'absent'));
    upgraded($ws, "offered \"$label\""); $n++;
}

# Connection with several tokens
$ws = Test::Nginx::WS->connect(path => '/ws', no_connection => 1,
    headers => [ Connection => 'keep-alive, Upgrade',
                 'X-MCP-Server-Name' => 's1', Authorization => 'Bearer t1' ]);
upgraded($ws, 'Connection: keep-alive, Upgrade'); $n++;

# header names in lower case, values in another case
$ws = Test::Nginx::WS->connect(path => '/ws', no_upgrade => 1,
    no_connection => 1, no_key => 1, no_version => 1,
    headers => [ upgrade => 'WebSocket', connection => 'UPGRADE',
                 'sec-websocket-key' => sample_key(),
                 'sec-websocket-version' => '13',
                 'x-mcp-server-name' => 's1',
                 authorization => 'bearer t1' ]);
is($ws->status, 101, 'lower-case header names: 101');
is($ws->headers->{'sec-websocket-accept'}, sample_accept(),
   'lower-case header names: accept key');
my $m = $ws->recv_message(3);
like($m && $m->{payload}, qr/"method":"initialize"/,
     'lower-case header names: initialize');
$ws->send_close(1000);
is(($ws->recv_close(3))[0], 1000, 'lower-case header names: close echoed');
$ws->close;
$n++;

# name and token in the query only
$ws = Test::Nginx::WS->connect(path => '/ws?server_name=s1&token=t1');
upgraded($ws, 'name and token in the query'); $n++;

# the header name wins over ?server_name=
$ws = Test::Nginx::WS->connect(path => '/ws?server_name=nope', @id);
upgraded($ws, 'X-MCP-Server-Name s1 + ?server_name=nope'); $n++;

# right header token + wrong query token: the header is the token
$ws = Test::Nginx::WS->connect(path => '/ws?server_name=s1&token=wrong',
    headers => [ Authorization => 'Bearer t1' ]);
upgraded($ws, 'right header token + wrong query token'); $n++;

my $c = counters();
is($c->{handshakes}, $n, "handshakes counts the $n upgrades");
is($c->{handshakes_refused}, 0, 'no refusal');
wait_servers('');
--- no_error_log
refused
[crit]
[alert]



=== TEST 3: token kinds: token=, token_file=, token_sha256=, no_auth (right and wrong)
--- user_files
>>> ../conf/f1.token
file-secret

--- http_config eval
'reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    server s2 token=t2;
    server f1 token_file=f1.token;
    server h1 token_sha256=' . Digest::SHA::sha256_hex('hash-secret') . ';
    server open no_auth;
}'
--- config
location /ws {
    reverse_mcp_connector a1;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
my $hex = Digest::SHA::sha256_hex('hash-secret');

refused(name => 'token_file: wrong token', status => 401, level => 'warn',
        req => { set => [ 'X-MCP-Server-Name' => 'f1',
                          Authorization => 'Bearer wrong' ] },
        log => 'refused server "f1": wrong token (401)');
refused(name => 'token_file: the content with its newline', status => 401,
        level => 'warn',
        req => { path => '/ws?server_name=f1&token=file-secret%0A' },
        log => 'refused server "f1": wrong token (401)');
refused(name => 'token_sha256: wrong token', status => 401, level => 'warn',
        req => { path => '/ws?server_name=h1&token=wrong' },
        log => 'refused server "h1": wrong token (401)');
refused(name => 'token_sha256: the digest is not the token', status => 401,
        level => 'warn',
        req => { set => [ 'X-MCP-Server-Name' => 'h1',
                          Authorization => "Bearer $hex" ] },
        log => 'refused server "h1": wrong token (401)');
refused(name => 'token=: wrong header, right query', status => 401,
        level => 'warn',
        req => { path => '/ws?server_name=s2&token=t2',
                 set => [ Authorization => 'Bearer t1' ] },
        log => 'refused server "s2": wrong token (401)');
is(server_names(), '', 'nothing registered after the refusals');

my @s;
push @s, register(name => 's1', token => 't1', via => 'header',
                  path => '/ws?token=wrong');
push @s, register(name => 's2', token => 't2', via => 'query');
push @s, register(name => 'f1', token => 'file-secret', via => 'header');
push @s, register(name => 'h1', token => 'hash-secret', via => 'query');
push @s, register(name => 'open', via => 'header');
wait_servers('f1,h1,open,s1,s2');

my $a = agent_of(status_json(), 'a1');
is($a->{servers_count}, 5, 'servers_count 5');
is($a->{tools_count}, 5, 'tools_count 5');
my $c = counters();
is($c->{handshakes}, 5, 'handshakes 5');
is($c->{registrations}, 5, 'registrations 5');
is($c->{handshakes_refused}, 5, 'handshakes_refused 5');

bye($_) for @s;
wait_servers('');
--- error_log eval
[qr/\[info\] .*reverse_mcp: server "f1" of agent "a1" connected/,
 qr/\[info\] .*reverse_mcp: server "h1" of agent "a1" connected/,
 qr/\[info\] .*reverse_mcp: server "open" of agent "a1" connected/]
--- no_error_log
[crit]
[alert]



=== TEST 4: reverse_mcp_query_token off: a query token is refused, the header works
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    server s2 token=t2;
}
--- config
location /ws {
    reverse_mcp_connector a1;
    reverse_mcp_query_token off;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
refused(name => 'query token while query tokens are off', status => 401,
        level => 'warn',
        req => { path => '/ws?server_name=s1&token=t1' },
        log => 'refused server "s1": query tokens are disabled, send '
               . '"Authorization: Bearer <token>" (401)');
refused(name => 'query token, name in the header', status => 401,
        level => 'warn',
        req => { path => '/ws?token=t1',
                 set => [ 'X-MCP-Server-Name' => 's1' ] },
        log => 'refused server "s1": query tokens are disabled, send '
               . '"Authorization: Bearer <token>" (401)');
is(server_names(), '', 'nothing registered');

# the header works; a query token next to it is ignored
my $s1 = register(name => 's1', token => 't1', via => 'header');
my $s2 = register(name => 's2', token => 't2', via => 'both');
wait_servers('s1,s2');
my $c = counters();
is($c->{handshakes}, 2, 'handshakes 2');
is($c->{handshakes_refused}, 2, 'handshakes_refused 2');
bye($s1);
bye($s2);
wait_servers('');
--- no_error_log
[crit]
[alert]



=== TEST 5: agent from a variable: an undefined agent is 404, a defined one works
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
}
reverse_mcp_agent a2 {
    server s1 token=u1;
}
map $http_x_agent $rmcp_agent {
    default  a1;
    two      a2;
    bad      nosuch;
    empty    "";
}
--- config
location /ws {
    reverse_mcp_connector $rmcp_agent;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
refused(name => 'agent "nosuch" (map)', status => 404, level => 'info',
        req => { set => [ 'X-MCP-Server-Name' => 's1',
                          Authorization => 'Bearer t1', 'X-Agent' => 'bad' ] },
        log => 'refused server "s1": unknown agent (404)',
        extra_log => [ 'warn', 'connector agent "nosuch" is not defined' ]);
refused(name => 'agent "" (map)', status => 404, level => 'info',
        req => { set => [ 'X-MCP-Server-Name' => 's1',
                          Authorization => 'Bearer t1',
                          'X-Agent' => 'empty' ] },
        log => 'refused server "s1": unknown agent (404)',
        extra_log => [ 'warn', 'connector agent "" is not defined' ]);
# the agent decides which token is right
refused(name => 'a1\'s token for agent a2', status => 401, level => 'warn',
        req => { set => [ 'X-MCP-Server-Name' => 's1',
                          Authorization => 'Bearer t1', 'X-Agent' => 'two' ] },
        log => 'refused server "s1": wrong token (401)');
is(server_names('a1') . '|' . server_names('a2'), '|', 'nothing registered');

my $x = register(name => 's1', token => 't1', via => 'header');
my $y = register(name => 's1', token => 'u1', via => 'header',
                 headers => [ 'X-Agent' => 'two' ]);
wait_servers('s1', 'a1');
wait_servers('s1', 'a2');
isnt(agent_of(status_json(), 'a1')->{servers}[0]{connection_id},
     agent_of(status_json(), 'a2')->{servers}[0]{connection_id},
     'two connections, one per agent');
is(counters()->{handshakes_refused}, 3, 'handshakes_refused 3');
bye($x);
bye($y);
wait_servers('', 'a1');
wait_servers('', 'a2');
--- no_error_log
[crit]
[alert]



=== TEST 6: reverse_mcp_duplicate reject: 409 while the first is registered, accepted once it left
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
}
--- config
location /ws {
    reverse_mcp_connector a1;
    reverse_mcp_duplicate reject;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
my $first = register(name => 's1', token => 't1', via => 'header');
wait_servers('s1');
my $j0 = status_json();
for my $via ('header', 'query') {
    refused(name => "duplicate s1 ($via)", status => 409, level => 'warn',
            req => $via eq 'header'
                   ? { set => [ 'X-MCP-Server-Name' => 's1',
                                Authorization => 'Bearer t1' ] }
                   : { path => '/ws?server_name=s1&token=t1' },
            log => 'refused server "s1": server name already connected (409)');
}
# a wrong token is refused as such, not as a duplicate
refused(name => 'duplicate s1 with a wrong token', status => 401,
        level => 'warn',
        req => { set => [ 'X-MCP-Server-Name' => 's1',
                          Authorization => 'Bearer nope' ] },
        log => 'refused server "s1": wrong token (401)');
is_deeply(status_json()->{agents}, $j0->{agents},
          'the first connection is still the registered one');
ok($first->pump(0.3) == 0 && !$first->{closed}, 'the first stays connected');

bye($first);
wait_servers('');
my $second = register(name => 's1', token => 't1', via => 'header');
wait_servers('s1');
isnt(agent_of(status_json(), 'a1')->{servers}[0]{connection_id},
     $j0->{agents}[0]{servers}[0]{connection_id},
     'a new connection of s1 once the first left');
is(counters()->{handshakes_refused}, 3, 'handshakes_refused 3');
bye($second);
wait_servers('');
--- no_error_log
[crit]
[alert]



=== TEST 7: max_servers reached: 503; a replacement of a connected name is not refused
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    server s2 token=t2;
    server s3 token=t3;
    max_servers 2;
}
--- config
location /ws {
    reverse_mcp_connector a1;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
my $s1 = register(name => 's1', token => 't1', via => 'header');
my $s2 = register(name => 's2', token => 't2', via => 'header');
wait_servers('s1,s2');
my $j0 = status_json();
is(agent_of($j0, 'a1')->{max_servers}, 2, 'max_servers 2 on the status page');

refused(name => 's3 over max_servers (header)', status => 503,
        level => 'warn',
        req => { set => [ 'X-MCP-Server-Name' => 's3',
                          Authorization => 'Bearer t3' ] },
        log => 'refused server "s3": agent server limit reached (503)');
refused(name => 's3 over max_servers (query)', status => 503,
        level => 'warn',
        req => { path => '/ws?server_name=s3&token=t3' },
        log => 'refused server "s3": agent server limit reached (503)');
is_deeply(status_json()->{agents}, $j0->{agents}, 'registry unchanged');

# a new connection of s1 replaces the old one: not a new server
my $s1b = register(name => 's1', token => 't1', via => 'header');
ok($s1->pump_until(sub { $s1->{closed} }, 5), 'the old s1 is closed');
is($s1->{close_code}, 1008, 'the old s1 gets 1008');
wait_servers('s1,s2');
isnt(agent_of(status_json(), 'a1')->{servers}[0]{connection_id},
     agent_of($j0, 'a1')->{servers}[0]{connection_id},
     's1 is the new connection');
$s1->disconnect;

# a free slot lets s3 in
bye($s2);
wait_servers('s1');
my $s3 = register(name => 's3', token => 't3', via => 'header');
wait_servers('s1,s3');
is(counters()->{handshakes_refused}, 2, 'handshakes_refused 2');
bye($s1b);
bye($s3);
wait_servers('');
--- no_error_log
[crit]
[alert]



=== TEST 8: tokens never reach error.log or access.log (info level)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=SECRETVALUE;
    server s2 token=other;
}
--- config
location /ws {
    reverse_mcp_connector a1;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
refused(name => 'SECRETVALUE as the wrong token of s2', status => 401,
        level => 'warn',
        req => { path => '/ws?server_name=s2&token=SECRETVALUE' },
        log => 'refused server "s2": wrong token (401)');
refused(name => 'SECRETVALUE first, unknown server', status => 403,
        level => 'warn',
        req => { path => '/ws?token=SECRETVALUE&server_name=nope&x=1' },
        log => 'refused server "nope": server is not registered for this '
               . 'agent (403)');
refused(name => 'SECRETVALUE, invalid key', status => 400, level => 'info',
        req => { path => '/ws?server_name=s1&token=SECRETVALUE',
                 set => [ 'Sec-WebSocket-Key' => 'short' ] },
        log => 'refused WebSocket handshake: missing or invalid '
               . 'Sec-WebSocket-Key (400)');
# the argument name in any case: nginx's $arg_token finds it too
# (found by test/fuzz/handshake_fuzz.c)
refused(name => 'SECRETVALUE as TOKEN=, wrong for s2', status => 401,
        level => 'warn',
        req => { path => '/ws?server_name=s2&TOKEN=SECRETVALUE' },
        log => 'refused server "s2": wrong token (401)');
my $s = register(name => 's1', token => 'SECRETVALUE', via => 'query');
wait_servers('s1');
bye($s);
wait_servers('');

my $access = "$servroot/logs/access.log";
ok(wait_until(sub { (() = `cat $access` =~ /GET \/ws/g) >= 5 }, 5),
   'five /ws lines in access.log');
my $al = do { local (@ARGV, $/) = $access; <> };
my $el = error_log_since_start();
no_secret($al, 'access.log');
no_secret($el, 'error.log');
like($al, qr{"GET /ws\?server_name=s2&token=\*\*\* HTTP/1\.1" 401 },
     'access.log: refused request with token=***');
like($al, qr{"GET /ws\?token=\*\*\*&server_name=nope&x=1 HTTP/1\.1" 403 },
     'access.log: token=*** first');
like($al, qr{"GET /ws\?server_name=s2&TOKEN=\*\*\* HTTP/1\.1" 401 },
     'access.log: TOKEN=*** in upper case');
like($al, qr{"GET /ws\?server_name=s1&token=\*\*\* HTTP/1\.1" 101 },
     'access.log: accepted request with token=***');
like($el, qr{refused server "s2": wrong token \(401\), client: \S+, server: \S+, request: "GET /ws\?server_name=s2&token=\*\*\* HTTP/1\.1"},
     'error.log: request line with token=***');
like($el, qr{request: "GET /ws\?server_name=s1&token=\*\*\* HTTP/1\.1"},
     'error.log: accepted request line with token=***');
--- no_error_log
[crit]
[alert]



=== TEST 9: HTTP/2 (h2c with prior knowledge) is refused with 400
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2 http2;
    location /ws {
        reverse_mcp_connector a1;
    }
}
--- config
location = /status {
    reverse_mcp_status;
}
--- test_code
my $out = `curl -s -o /dev/null -w '%{http_code} %{http_version}' --max-time 5 --http2-prior-knowledge -H 'X-MCP-Server-Name: s1' -H 'Authorization: Bearer t1' 'http://127.0.0.1:$port2/ws' 2>&1`;
is($out, '400 2', 'HTTP/2 request: status 400 over HTTP/2');
ok(wait_until(sub {
    error_log_since_start() =~ /\[info\] \d+#\d+: \*\d+ reverse_mcp: refused WebSocket handshake: WebSocket over HTTP\/2 is not supported, connect with HTTP\/1\.1 \(400\)/
}, 2), 'log: WebSocket over HTTP/2 is not supported')
    or diag(error_log_since_start());
is(counters()->{handshakes_refused}, 1, 'handshakes_refused 1');
is(counters()->{handshakes}, 0, 'handshakes 0');
is(server_names(), '', 'nothing registered');
--- no_error_log
[crit]
[alert]



=== TEST 10: nginx access control in the same location: deny, allow, auth_request
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    server s2 token=t2;
}
--- config
location /ws-deny {
    deny all;
    reverse_mcp_connector a1;
}
location /ws-allow {
    allow 127.0.0.1;
    deny all;
    reverse_mcp_connector a1;
}
location /ws-auth-ok {
    auth_request /auth-ok;
    reverse_mcp_connector a1;
}
location /ws-auth-no {
    auth_request /auth-no;
    reverse_mcp_connector a1;
}
location = /auth-ok {
    internal;
    return 204;
}
location = /auth-no {
    internal;
    return 401;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
my @id = (set => [ 'X-MCP-Server-Name' => 's1', Authorization => 'Bearer t1' ]);

my $r = upgrade_request(path => '/ws-deny', @id);
is($r->{status}, 403, 'deny all: 403 from nginx');
ok(!exists $r->{headers}{'sec-websocket-accept'}, 'deny all: no upgrade');
like(error_log_since_start(), qr/access forbidden by rule/,
     'deny all: nginx logs the access rule');

$r = upgrade_request(path => '/ws-auth-no', @id);
is($r->{status}, 401, 'auth_request 401: 401');
ok(!defined $r->{headers}{'www-authenticate'},
   'auth_request 401: not the connector\'s WWW-Authenticate');

my $c = counters();
is($c->{handshakes_refused}, 0, 'the connector did not run: no refusal');
is($c->{handshakes}, 0, 'no handshake');
unlike(error_log_since_start(), qr/reverse_mcp: refused/,
       'no connector refusal logged');

my $s1 = register(name => 's1', token => 't1', via => 'header',
                  path => '/ws-allow');
my $s2 = register(name => 's2', token => 't2', via => 'header',
                  path => '/ws-auth-ok');
wait_servers('s1,s2');

# the connector still checks after nginx allowed the request
refused(name => 'allowed by nginx, wrong token', status => 401,
        level => 'warn',
        req => { path => '/ws-auth-ok',
                 set => [ 'X-MCP-Server-Name' => 's2',
                          Authorization => 'Bearer wrong' ] },
        log => 'refused server "s2": wrong token (401)');
refused(name => 'allowed by allow 127.0.0.1, wrong token', status => 401,
        level => 'warn',
        req => { path => '/ws-allow',
                 set => [ 'X-MCP-Server-Name' => 's1',
                          Authorization => 'Bearer wrong' ] },
        log => 'refused server "s1": wrong token (401)');
is(counters()->{handshakes}, 2, 'handshakes 2');
bye($s1);
bye($s2);
wait_servers('');
--- no_error_log
[crit]
[alert]



=== TEST 11: tokens stay out of the logs when nginx refuses before the connector (deny, auth_request)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=SECRETVALUE;
}
--- config
location /ws-deny {
    deny all;
    reverse_mcp_connector a1;
}
location /ws-auth-no {
    auth_request /auth-no;
    reverse_mcp_connector a1;
}
location = /auth-no {
    internal;
    return 403;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
my $r = upgrade_request(path => '/ws-deny?server_name=s1&token=SECRETVALUE');
is($r->{status}, 403, 'deny all: 403');
$r = upgrade_request(path => '/ws-auth-no?server_name=s1&token=SECRETVALUE');
is($r->{status}, 403, 'auth_request 403: 403');

my $access = "$servroot/logs/access.log";
ok(wait_until(sub { (() = `cat $access` =~ /GET \/ws-/g) >= 2 }, 5),
   'two lines in access.log');
my $al = do { local (@ARGV, $/) = $access; <> };
my $el = error_log_since_start();
like($el, qr/access forbidden by rule/, 'error.log: the deny line');
no_secret($el, 'error.log');
no_secret($al, 'access.log');
like($al, qr{"GET /ws-deny\?server_name=s1&token=\*\*\* HTTP/1\.1" 403 },
     'access.log: deny all with token=***');
like($al, qr{"GET /ws-auth-no\?server_name=s1&token=\*\*\* HTTP/1\.1" 403 },
     'access.log: auth_request with token=***');
--- no_error_log
[crit]
[alert]
