# Security properties of the gateway (issue 6): no token or API key in any
# log at any level (a debug error log is grepped), names that try to inject
# HTTP headers or break JSON, tool descriptions relayed verbatim up to
# reverse_mcp_max_description, reverse_mcp_max_pending calls per socket,
# and agents kept apart in both directions (connector, /mcp, /mcp/<server>,
# sessions, chat, status).
#
# Covered elsewhere: constant-time token comparison (SHA-256 digests and
# CRYPTO_memcmp, src/ngx_http_reverse_mcp_connector.c and _endpoint.c),
# reverse_mcp_query_token off, token_sha256=, max_servers and max_tools
# (t/001, t/002, t/005), reverse_mcp_max_message (t/003),
# reverse_mcp_max_sessions and Origin checks (t/008), mTLS (t/032).

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::ReverseMCP;
use Test::Nginx::MCP;
use Test::Nginx::FakeLLM;
use Test::Nginx::ChatUtil qw(chat);
use MIME::Base64 ();
use Encode ();

master_on();
workers(2);

our $LLM = Test::Nginx::FakeLLM->start;
$ENV{TEST_NGINX_LLM_URL} = $LLM->url;

run_tests();

$LLM->stop;

# ------------------------------------------------------------------------
# helpers (test_code runs in package main)
# ------------------------------------------------------------------------

sub agent_servers {
    my ($agent) = @_;
    my ($a) = grep { $_->{name} eq $agent } @{ status_json()->{agents} };
    return @{ $a->{servers} || [] };
}

# a reverse server whose "slow" tool answers only when the test says so
sub slow_server {
    return up(@_, tools => [ tool('echo'), tool('slow') ], hold => ['slow']);
}

sub call_msg {
    my ($id, $name, $text) = @_;
    return req($id, 'tools/call', { name => $name,
                                    arguments => { text => $text // 'x' } });
}

__DATA__

=== TEST 1: no token or API key in the debug error log or the access log (header, query, wrong tokens, caller tokens, LLM key)
--- log_level: debug
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=srv-secret-0001;
    server s2 token=srv-secret-0002;
    llm provider=openai model=gpt-test base_url=$TEST_NGINX_LLM_URL
        api_key=sk-llm-secret-0003 timeout=10s;
}
--- config
location /ws { reverse_mcp_connector a1; }
location /wsoff { reverse_mcp_connector a1; reverse_mcp_query_token off; }
location = /status { reverse_mcp_status; }
location /mcp {
    reverse_mcp_endpoint a1;
    reverse_mcp_endpoint_token token=caller-secret-0004;
}
location /chat { reverse_mcp_chat a1; }
--- test_code
my @secrets = qw(srv-secret-0001 srv-secret-0002 sk-llm-secret-0003
                 caller-secret-0004 wrong-secret-0005 wrong-secret-0006
                 caller-wrong-0007);
# header and query token (via => 'both'), then header only, query only
my $s1 = up(name => 's1', token => 'srv-secret-0001');
my $s2 = up(name => 's2', token => 'srv-secret-0002', via => 'query');
my %st;
for my $t ([ both => 'wrong-secret-0005', '/ws' ],
           [ query => 'wrong-secret-0006', '/ws' ],
           [ header => 'wrong-secret-0005', '/ws' ],
           [ query => 'srv-secret-0001', '/wsoff' ]) {
    my $x = Test::Nginx::ReverseMCP->new(port => $ServerPort, name => 's1',
                                         via => $t->[0], token => $t->[1],
                                         path => $t->[2]);
    push @{ $st{ $x->connect } }, "$t->[0] $t->[2]";
    $x->disconnect;
}
is_deeply(\%st, { 401 => [ 'both /ws', 'query /ws', 'header /ws',
                           'query /wsoff' ] },
          'wrong tokens and a query token on /wsoff: 401');

# the caller's Bearer token, right and wrong
my $r = mcp(msg => req(0, 'initialize', { protocolVersion => '2025-06-18' }),
            headers => [ Authorization => 'Bearer caller-wrong-0007' ]);
is($r->{status}, 401, 'a wrong caller token: 401');
$r = mcp(msg => req(0, 'initialize', { protocolVersion => '2025-06-18' }),
         headers => [ Authorization => 'Bearer caller-secret-0004' ]);
is($r->{status}, 200, 'the right caller token: 200');
my $sid = $r->{headers}{'mcp-session-id'};
$r = mcp(session => $sid, servers => [ $s1 ],
         headers => [ Authorization => 'Bearer caller-secret-0004' ],
         msg => call_msg(1, 's1__echo', 'hi'));
is($r->{json}{result}{content}[0]{text}, 'hi', 'a call with the token');

# the LLM key: one good chat, one answer of the LLM that echoes the key
$main::LLM->reset;
$r = chat(msg => { message => 'hello' });
is($r->{status}, 200, 'chat: 200 (the LLM got the key)');
my @req = $main::LLM->requests;
is($req[0]{headers}{authorization}, 'Bearer sk-llm-secret-0003',
   'the LLM received the key');
$main::LLM->script({ status => 401, error_type => 'invalid_request_error',
                     error_message => 'Incorrect API key provided: ',
                     echo_key => 1 });
$r = chat(msg => { message => 'hello again' });
is($r->{status}, 502, 'an LLM that refuses the key: 502');

$s1->close(1000, 'bye');
$s2->close(1000, 'bye');
$s1->pump(0.3);
$s2->pump(0.3);

my $log = slurp("$ServRoot/logs/error.log");
my $access = slurp("$ServRoot/logs/access.log");
ok(($log =~ tr/\n//) > 500, 'the error log is a debug log ('
   . ($log =~ tr/\n//) . ' lines)');
like($log, qr/\[debug\] .*http header: "Authorization: Bearer \*\*\*"/,
     'nginx logged the Authorization header at debug level, redacted');
like($log, qr/\[debug\] .*http args: "[^"]*token=\*\*\*/,
     'nginx logged the query string at debug level, redacted');
like($log, qr/refused server "s1": wrong token \(401\)/,
     'the refusals are in the log');
note(sprintf 'FIGURE secrets: %d debug log lines and %d access log lines '
     . 'checked for %d secrets', ($log =~ tr/\n//), ($access =~ tr/\n//),
     scalar @secrets);
for my $secret (@secrets) {
    ok(index($log, $secret) < 0, "error.log: no $secret");
    ok(index($access, $secret) < 0, "access.log: no $secret");
}
--- no_error_log
[alert]
[crit]



=== TEST 2: header injection: server and tool names with CR/LF, quotes and spaces are refused; unknown names come back JSON-escaped, never in a header
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
# server names: query (percent-encoded CR LF) and header (a quote)
for my $name ("s1\r\nX-Evil: 1", "s1\"x", 's1 x', "s1\x{e9}") {
    my $x = Test::Nginx::ReverseMCP->new(port => $ServerPort, name => $name,
                                         via => 'query', token => 't');
    is($x->connect, 400, 'server name ' . enc($name) . ': 400');
    ok(!grep({ /evil/i } keys %{ $x->ws->headers || {} }),
       '... nothing of it in the response headers');
    $x->disconnect;
}
my $x = Test::Nginx::ReverseMCP->new(port => $ServerPort, name => 's1"x',
                                     via => 'header', token => 't');
is($x->connect, 400, 'a quote in X-MCP-Server-Name: 400');
$x->disconnect;

my $desc = "Quotes \" and \\ backslashes, </script>, \x{2028}, "
         . "\x{1F600}, CR\r\nLF and a tab\t: verbatim";
my $s = up(name => 's1', tools => [
    tool('ok', description => $desc),
    tool("bad\r\nX-Evil: 1"), tool('q"uote'), tool('sp ace'),
    tool("\x{e9}t\x{e9}"), tool('x' x 129) ]);
my ($e) = agent_servers('a1');
is($e->{tools_count}, 1, 'one tool registered');
is($e->{tools_rejected}, 5, 'five rejected');
is($e->{tools}[0]{description}, $desc,
   'the description is kept verbatim in the registry');

my $sid = session();
my $r = mcp(session => $sid, msg => req(1, 'tools/list'));
is_deeply(names($r), [ 's1__ok' ], 'tools/list: only s1__ok');
is($r->{json}{result}{tools}[0]{description}, $desc,
   'tools/list relays the description verbatim');

for my $name ("s1__x\r\nX-Evil: 1", "s1__ok\"}, \"evil\": {\"", "\r\n\r\n") {
    $r = mcp(session => $sid, servers => [ $s ],
             msg => call_msg(2, $name));
    is($r->{status}, 200, 'tools/call ' . enc($name) . ': 200');
    is($r->{json}{error}{code}, -32602, '... -32602');
    is($r->{json}{error}{message}, "Unknown tool: $name",
       '... the name comes back inside valid JSON');
    ok(!grep({ /evil/i } keys %{ $r->{headers} }),
       '... and in no response header');
}
ok(!$s->received('tools/call'), 'the server received no call');

# 2026-07-28: Mcp-Name must equal params.name (base64 decoded first)
my $b64 = '=?base64?' . MIME::Base64::encode_base64("s1__ok\r\nX-Evil: 1", '')
        . '?=';
$r = mcp(modern(3, 'tools/call', { name => 's1__ok', arguments => {} },
                name_header => $b64), servers => [ $s ]);
is($r->{status}, 400, 'an Mcp-Name that decodes to CR LF: 400');
is($r->{json}{error}{code}, -32020, '... -32020');
ok(!grep({ /evil/i } keys %{ $r->{headers} }), '... no header injected');
$r = mcp(msg => req(4, 'ping'), session => "x\"y");
ok($r->{status} == 400 || $r->{status} == 404,
   "a quote in Mcp-Session-Id: $r->{status}");
unlike($r->{raw}, qr/^Mcp-Session-Id:/mi, '... not echoed');
$s->disconnect;
--- error_log eval
[qr/server "s1" tool #1 rejected: tool name has characters outside/,
 qr/server "s1" tool #5 rejected: tool name must be 1-128 characters/]
--- no_error_log
[alert]
[crit]



=== TEST 3: reverse_mcp_max_description: a description of the limit is relayed verbatim, one byte more rejects the tool with a warning
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
reverse_mcp_max_description 1k;
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
# 1024 bytes of UTF-8 (2-byte characters and one ASCII byte)
my $fits = ("\x{e9}" x 511) . 'ab';
my $over = ("\x{e9}" x 512) . 'c';
is(length(Encode::encode_utf8($fits)), 1024, 'the fitting one: 1024 bytes');
is(length(Encode::encode_utf8($over)), 1025, 'the other: 1025 bytes');
my $s = up(name => 's1', tools => [ tool('fits', description => $fits),
                                    tool('over', description => $over),
                                    { name => 'none',
                                      inputSchema => { type => 'object' } } ]);
my ($e) = agent_servers('a1');
is($e->{tools_count}, 2, 'two tools registered');
is($e->{tools_rejected}, 1, 'one rejected');
my $sid = session();
my $r = mcp(session => $sid, msg => req(1, 'tools/list'));
is_deeply([ sort @{ names($r) } ], [ 's1__fits', 's1__none' ],
          'tools/list: fits and none');
my ($t) = grep { $_->{name} eq 's1__fits' } @{ $r->{json}{result}{tools} };
is($t->{description}, $fits, 'relayed verbatim');
$s->disconnect;
--- error_log
server "s1" tool "over" rejected: its description has 1025 bytes, more than reverse_mcp_max_description (1024)
--- no_error_log
[alert]
[crit]



=== TEST 4: reverse_mcp_max_pending 2: a third call in flight on the socket gets -32004 from either worker; the server and its calls are untouched
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
reverse_mcp_max_pending 2;
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
location /mb { reverse_mcp_endpoint a1; reverse_mcp_force_mailbox on; }
--- test_code
my $s = slow_server(name => 's1');
my ($e0) = agent_servers('a1');
my $sid = session();
my @h = map { mcp_start(session => $sid, msg => call_msg($_, 's1__slow')) }
        1 .. 2;
ok($s->pump_until(sub { @{ $s->{held} } == 2 }, 5),
   'two slow calls reached the server');
my $r = mcp(session => $sid, servers => [ $s ],
            msg => call_msg(3, 's1__echo', 'third'));
is($r->{json}{error}{code}, -32004, 'a third call: -32004');
like($r->{json}{error}{message},
     qr/^server "s1" has too many calls in flight \(reverse_mcp_max_pending\)/,
     '... saying why');
$r = mcp(path => '/mb', session => session(path => '/mb'),
         servers => [ $s ], msg => call_msg(4, 's1__echo', 'fourth'));
is($r->{json}{error}{code}, -32004, 'through the mailbox: -32004');
like($r->{json}{error}{message}, qr/too many calls in flight/,
     '... saying why');
is(scalar($s->received('tools/call')), 2,
   'the server received only the two slow calls');

$s->respond($_, { content => [ { type => 'text', text => "done $_" } ] })
    for @{ $s->{held} };
for my $i (0, 1) {
    my $x = mcp_finish($h[$i], 5);
    like($x->{json}{result}{content}[0]{text}, qr/^done \d+$/,
         'slow call ' . ($i + 1) . ' is answered');
}
$r = mcp(session => $sid, servers => [ $s ],
         msg => call_msg(5, 's1__echo', 'later'));
is($r->{json}{result}{content}[0]{text}, 'later', 'then calls pass again');
my ($e1) = agent_servers('a1');
is($e1->{connection_id}, $e0->{connection_id}, 'the same connection');
$s->disconnect;
--- error_log
server "s1" of agent "a1" has 2 calls in flight (reverse_mcp_max_pending), a "tools/call" call is refused
--- no_error_log
[alert]
[crit]



=== TEST 5: max_server_tools 3: a server listing 4 tools is closed with 1008, the agent's other servers register
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    server s2 token=t;
    max_server_tools 3;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $big = Test::Nginx::ReverseMCP->new(port => $ServerPort, name => 's1',
    token => 't', tools => [ map { tool("t$_") } 1 .. 4 ]);
is($big->connect, 101, 's1 with 4 tools: 101');
ok($big->pump_until(sub { $big->{closed} }, 5), '... then closed');
is($big->{close_code}, 1008, '... with 1008');
is($big->{close_reason}, 'server tool limit reached (max_server_tools)',
   '... saying why');
my $s2 = up(name => 's2', tools => [ map { tool("t$_") } 1 .. 3 ]);
is_deeply([ map { $_->{name} } agent_servers('a1') ], [ 's2' ],
          's2 with 3 tools registered, s1 not');
$s2->disconnect;
--- no_error_log
[alert]
[crit]



=== TEST 6: bad reverse_mcp_max_pending
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_max_pending 0;
--- config
--- must_die
--- error_log
"reverse_mcp_max_pending" must be at least 1



=== TEST 7: bad reverse_mcp_max_description
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_max_description lots;
--- config
--- must_die
--- error_log
"reverse_mcp_max_description" directive invalid value



=== TEST 8: agents apart in both directions: connectors, tool lists, calls, /mcp/<server>, sessions, chat, status; the same server name in two agents
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    server x token=t1;
    llm provider=openai model=gpt-test base_url=$TEST_NGINX_LLM_URL
        api_key=k1 timeout=10s;
}
reverse_mcp_agent a2 {
    server s2 token=t;
    server x token=t2;
    llm provider=openai model=gpt-test base_url=$TEST_NGINX_LLM_URL
        api_key=k2 timeout=10s;
}
--- config
location /ws { reverse_mcp_connector a1; }
location /ws2 { reverse_mcp_connector a2; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
location /mcp2 { reverse_mcp_endpoint a2; }
location /chat { reverse_mcp_chat a1; }
location /chat2 { reverse_mcp_chat a2; }
--- test_code
# a server can only join the agent it is declared in
my $w = Test::Nginx::ReverseMCP->new(port => $ServerPort, name => 's1',
                                     token => 't', path => '/ws2');
is($w->connect, 403, "s1 (a1's) on a2's connector: 403");
$w = Test::Nginx::ReverseMCP->new(port => $ServerPort, name => 's2',
                                  token => 't', path => '/ws');
is($w->connect, 403, "s2 (a2's) on a1's connector: 403");
$w = Test::Nginx::ReverseMCP->new(port => $ServerPort, name => 'x',
                                  token => 't2', path => '/ws');
is($w->connect, 401, "a2's token of x on a1's connector: 401");

my $s1 = up(name => 's1');
my $s2 = up(name => 's2', agent => 'a2', path => '/ws2');
my $x1 = up(name => 'x', token => 't1', tools => [ tool('echo'),
                                                   tool('only_a1') ]);
my $x2 = up(name => 'x', token => 't2', agent => 'a2', path => '/ws2',
            tools => [ tool('echo'), tool('only_a2') ]);
my @all = ($s1, $s2, $x1, $x2);

my %sid = (a1 => session(), a2 => session(path => '/mcp2'));
my $r = mcp(session => $sid{a1}, msg => req(1, 'tools/list'));
is_deeply([ sort @{ names($r) } ],
          [ qw(s1__echo x__echo x__only_a1) ], "a1 lists a1's tools only");
$r = mcp(path => '/mcp2', session => $sid{a2}, msg => req(1, 'tools/list'));
is_deeply([ sort @{ names($r) } ],
          [ qw(s2__echo x__echo x__only_a2) ], "a2 lists a2's tools only");

for my $c ([ '/mcp', 'a1', 's2__echo' ], [ '/mcp2', 'a2', 's1__echo' ],
           [ '/mcp', 'a1', 'x__only_a2' ], [ '/mcp2', 'a2', 'x__only_a1' ])
{
    $r = mcp(path => $c->[0], session => $sid{ $c->[1] }, servers => \@all,
             msg => call_msg(2, $c->[2]));
    is($r->{json}{error}{code}, -32602,
       "$c->[1] calls the other agent's $c->[2]: -32602");
}
ok(!grep({ $_->received('tools/call') } @all), 'no server got a call');

$r = mcp(session => $sid{a1}, servers => \@all,
         msg => call_msg(3, 'x__echo', 'to a1'));
is($r->{json}{result}{content}[0]{text}, 'to a1', "a1's x__echo answers");
$r = mcp(path => '/mcp2', session => $sid{a2}, servers => \@all,
         msg => call_msg(3, 'x__echo', 'to a2'));
is($r->{json}{result}{content}[0]{text}, 'to a2', "a2's x__echo answers");
is(scalar($x1->received('tools/call')), 1, "a1's x got one call");
is(scalar($x2->received('tools/call')), 1, "a2's x got one call");
is(($x1->received('tools/call'))[0]{params}{arguments}{text}, 'to a1',
   "... the call of a1's caller");

for my $c ([ '/mcp/s2', 'a1' ], [ '/mcp2/s1', 'a2' ]) {
    $r = mcp(path => $c->[0], msg => req(0, 'initialize', {
                 protocolVersion => '2025-06-18' }));
    is($r->{status}, 404, "$c->[0] (the other agent's server): 404");
}
$r = mcp(path => '/mcp2', session => $sid{a1}, msg => req(4, 'tools/list'));
is($r->{status}, 404, "a1's session on a2's endpoint: 404");
$r = mcp(path => '/mcp', session => $sid{a2}, msg => req(4, 'tools/list'));
is($r->{status}, 404, "a2's session on a1's endpoint: 404");

# the chat agents' models see their own agent's tools only
$main::LLM->reset;
chat(msg => { message => 'hello' }, path => '/chat');
chat(msg => { message => 'hello' }, path => '/chat2');
my @req = $main::LLM->requests;
my @tools = map { [ sort map { $_->{function}{name} }
                    @{ $_->{body}{tools} || [] } ] } @req;
is_deeply(\@tools, [ [ qw(s1__echo x__echo x__only_a1) ],
                     [ qw(s2__echo x__echo x__only_a2) ] ],
          'each chat offers its own agent\'s tools to its model');
is_deeply([ map { $_->{headers}{authorization} } @req ],
          [ 'Bearer k1', 'Bearer k2' ], '... with its own key');

my $j = status_json('/status?agent=a2');
is_deeply([ map { $_->{name} } @{ $j->{agents} } ], [ 'a2' ],
          'status ?agent=a2 shows a2 only');
is_deeply([ map { $_->{name} } @{ $j->{agents}[0]{servers} } ],
          [ 's2', 'x' ], "... with a2's servers");
$_->disconnect for @all;
--- no_error_log
[alert]
[crit]
