# Requests of a reverse server during a call (sampling/createMessage,
# elicitation/create, roots/list) relayed to the call's caller through the
# endpoint, and the caller's answers back: on the POST's SSE stream before
# the result, under a gateway id "rmcp:<pid>:<key>:<seq>" (pid: the
# worker holding the call); the caller POSTs its answer (202) to any
# worker, the server gets it with its own id.  Every combination of the
# worker holding the call, the worker owning the socket and the worker the
# answer lands on (requests pinned to a worker with worker_socket()).
# Errors to the server when the gateway cannot tell the call or the caller
# cannot answer; the call's end (result, timeout, the caller leaving, the
# socket closing) fails the requests its caller did not answer.  The
# official SDK client with a sampling and an elicitation handler against
# the SDK's McpServer through /mcp.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::MCP;
use Test::Nginx::FakeLLM;
use Test::Nginx::ChatUtil qw(chat);

master_on();
workers(2);

# the chat's model (TEST 8)
our $LLM = Test::Nginx::FakeLLM->start;
$ENV{TEST_NGINX_LLM_URL} = $LLM->url;

run_tests();

$LLM->stop;

# ------------------------------------------------------------------------
# helpers (test_code runs in package main)
# ------------------------------------------------------------------------

# a reverse server with the tool "ask" whose calls it holds (answered by
# the test with $s->respond), recorded in $s->{calls}
sub asker {
    my (%o) = @_;
    my $s;
    $s = up(tools => [ tool('ask') ], %o, on_request => sub {
        my ($srv, $m) = @_;
        return undef unless $m->{method} eq 'tools/call';
        push @{ $srv->{calls} }, $m;
        return { noreply => 1 };
    });
    return $s;
}

sub owner_of {
    my ($name) = @_;
    my ($a) = grep { $_->{name} eq 'a1' } @{ status_json()->{agents} };
    my ($e) = grep { $_->{name} eq $name } @{ $a->{servers} };
    return $e->{owner_pid};
}

sub other_worker {
    my ($pid) = @_;
    my ($o) = grep { $_ != $pid } nginx_worker_pids();
    return $o;
}

# starts tools/call of "ask" and waits until the server holds it;
# returns the HTTP handle and the call as the server got it
sub ask {
    my ($s, %o) = @_;
    my $n = @{ $s->{calls} || [] };
    my $args = delete $o{arguments} // {};
    my $meta = delete $o{meta};
    my $h = mcp_start(path => '/mcp/s1', %o,
                      msg => req($o{id} // 1, 'tools/call', {
                          name => $o{name} // 'ask', arguments => $args,
                          $meta ? (_meta => $meta) : () }),
                      servers => [ $s ]);
    mcp_poll($h, 5, sub { @{ $s->{calls} || [] } > $n })
        or die "the server did not get the tools/call\n";
    return ($h, $s->{calls}[$n]);
}

# polls the call's stream until the $n-th (1) event with $method came;
# returns it
sub event {
    my ($h, $method, $n) = @_;
    my $e;
    mcp_poll($h, 5, sub {
        my @e = grep { ($_->{method} // '') eq $method } events_of($_[0]);
        $e = $e[($n // 1) - 1];
        return $e;
    });
    return $e;
}

# the caller's answer (a JSON-RPC response) POSTed
sub answer {
    my ($sid, $id, %o) = @_;
    my $msg = { jsonrpc => '2.0', id => $id,
                $o{error} ? (error => $o{error}) : (result => $o{result}) };
    return mcp(session => $sid, msg => $msg,
               $o{worker} ? (worker => $o{worker}) : (),
               $o{path} ? (path => $o{path}) : ());
}

sub log_since {
    my ($mark) = @_;
    return substr(error_log_since_start(), $mark);
}

__DATA__

=== TEST 1: sampling and elicitation relayed for every worker combination; the server gets the answer with its own id, the caller the result after the request
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s = asker(name => 's1');
my $owner = owner_of('s1');
my $other = other_worker($owner);
ok($owner && $other && $owner != $other, "two workers: owner $owner, other $other");

my $sid = session(capabilities => { sampling => {}, elicitation => {} });

my @cases = (
    [ 'call and answer on the owner', $owner, $owner ],
    [ 'call on the owner, answer on the other worker (ROUTE)',
      $owner, $other ],
    [ 'call on the other worker (mailbox), answer there', $other, $other ],
    [ 'call on the other worker, answer on the owner (ROUTE, then the '
      . 'call\'s mailbox)', $other, $owner ],
);

my $n = 0;
for my $c (@cases) {
    my ($what, $cw, $aw) = @$c;
    for my $kind ('sampling', 'elicitation') {
        $n++;
        my $aggregate = $n % 2;
        my ($h, $call) = ask($s, session => $sid, id => "c$n", worker => $cw,
                             $aggregate ? (path => '/mcp', name => 's1__ask')
                                        : ());
        my ($method, $params, $result) = $kind eq 'sampling'
            ? ('sampling/createMessage',
               { messages => [ { role => 'user', content =>
                   { type => 'text', text => "q$n" } } ], maxTokens => 9 },
               { role => 'assistant', model => 'm', content =>
                   { type => 'text', text => "a$n" } })
            : ('elicitation/create',
               { message => "who $n?", requestedSchema => { type => 'object',
                   properties => { name => { type => 'string' } } } },
               { action => 'accept', content => { name => "n$n" } });
        my $rid = $s->request($method, $params);
        my $ev = event($h, $method);
        ok($ev, "$what, $kind: the request reached the caller's stream")
            or next;
        like($ev->{id}, qr/^rmcp:$cw:\d+:\d+$/,
             "$what, $kind: under a gateway id naming the holding worker");
        is_deeply($ev->{params}, $params, "$what, $kind: params as sent");
        like($h->{buf}, qr{\r\ncontent-type: text/event-stream}i,
             "$what, $kind: the reply became a stream");

        my $a = answer($sid, $ev->{id}, result => $result, worker => $aw);
        is($a->{status}, 202, "$what, $kind: the answer POST: 202");
        is($a->{body}, '', "$what, $kind: ... without a body");
        is_deeply($s->wait_response($rid, 5),
                  { jsonrpc => '2.0', id => $rid, result => $result },
                  "$what, $kind: the server got the answer with its id");

        $s->respond($call->{id}, { content => [ { type => 'text',
                                                  text => "done $n" } ] });
        my $r = mcp_finish($h);
        is($r->{status}, 200, "$what, $kind: 200");
        is_deeply([ map { $_->{method} // "result $_->{id}" }
                    @{ $r->{events} } ],
                  [ $method, "result c$n" ],
                  "$what, $kind: the request, then the result");
        is($r->{json}{result}{content}[0]{text}, "done $n",
           "$what, $kind: the tool's result");
    }
}

my $log = error_log_since_start();
like($log, qr/\[info\] .*server "s1" request "sampling\/createMessage" \d+ relayed to the caller of call \d+, /,
     'relayed requests are logged at info');
unlike($log, qr/rmcp:\d+:\d+:\d+/,
       'gateway ids (they answer a request) never reach the log');
like($log, qr/\[info\] .*server "s1" request \d+ answered by the caller/,
     'answers are logged at info');
unlike($log, qr/\[(warn|error|crit|alert|emerg)\]/, 'no warning or error');



=== TEST 2: an error answer, roots/list, the server's ping, answers from another session, after the call and with ids the gateway never gave
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s = asker(name => 's1');
my $owner = owner_of('s1');
my $other = other_worker($owner);
my $sid = session(capabilities => { sampling => {}, roots => {} });
my $sid2 = session(capabilities => { sampling => {} });

my ($h, $call) = ask($s, session => $sid, worker => $other);

# the server's ping: the gateway answers, the caller sees nothing
my $pid = $s->request('ping');
is_deeply($s->wait_response($pid, 5), { jsonrpc => '2.0', id => $pid,
                                        result => {} },
          'ping from the server during a call: the gateway answers {}');

# an error answer is passed on as it is
my $rid = $s->request('sampling/createMessage', { messages => [],
                                                  maxTokens => 1 });
my $ev = event($h, 'sampling/createMessage');
ok($ev, 'sampling request relayed');
my $err = { code => -1, message => 'User rejected sampling request',
            data => { why => 'no' } };

# an answer from another session is dropped
my $mark = length error_log_since_start();
my $a = answer($sid2, $ev->{id}, result => { x => 1 }, worker => $owner);
is($a->{status}, 202, 'an answer from another session: 202 ...');
ok(wait_until(sub { log_since($mark) =~ /\[info\] .*relayed request of call \d+ came from another session, dropped/ }, 5, 0.05),
   '... dropped, logged at info');
$s->pump(0.3);
ok(!exists $s->{responses}{$rid}, '... the server got nothing');

$a = answer($sid, $ev->{id}, error => $err);
is($a->{status}, 202, 'an error answer: 202');
is_deeply($s->wait_response($rid, 5), { jsonrpc => '2.0', id => $rid,
                                        error => $err },
          'the server got the caller\'s error as it is, with its id');

# roots/list
$rid = $s->request('roots/list');
$ev = event($h, 'roots/list');
ok($ev, 'roots/list relayed');
my $roots = { roots => [ { uri => 'file:///home/ada', name => 'home' } ] };
is(answer($sid, $ev->{id}, result => $roots, worker => $owner)->{status},
   202, 'roots answer: 202');
is_deeply($s->wait_response($rid, 5), { jsonrpc => '2.0', id => $rid,
                                        result => $roots },
          'the server got the roots');

# the same answer again: the request no longer waits
$mark = length error_log_since_start();
is(answer($sid, $ev->{id}, result => $roots)->{status}, 202,
   'a second answer to the same request: 202 ...');
ok(wait_until(sub { log_since($mark) =~ /\[info\] .*that no longer waits for it, dropped/ }, 5, 0.05),
   '... dropped, logged at info');

# the server gives up a request: its caller is told, with the gateway id
my $cid = $s->request('sampling/createMessage', { messages => [] });
my $cev = event($h, 'sampling/createMessage', 2);
$s->notify('notifications/cancelled', { requestId => $cid,
                                        reason => 'took too long' });
my $cn = event($h, 'notifications/cancelled');
is_deeply($cn->{params}, { requestId => $cev->{id},
                           reason => 'took too long' },
          'the server cancels its request: the caller gets '
          . 'notifications/cancelled for the gateway id');
$mark = length error_log_since_start();
is(answer($sid, $cev->{id}, result => {}, worker => $other)->{status}, 202,
   '... an answer after that: 202 ...');
ok(wait_until(sub { log_since($mark) =~ /\[info\] .*that no longer waits for it, dropped/ }, 5, 0.05),
   '... dropped, logged at info');
$s->pump(0.2);
ok(!exists $s->{responses}{$cid}, '... the server got nothing');

$s->respond($call->{id}, { content => [] });
my $r = mcp_finish($h);
is_deeply([ map { $_->{method} // 'result' } @{ $r->{events} } ],
          [ 'sampling/createMessage', 'roots/list', 'sampling/createMessage',
            'notifications/cancelled', 'result' ],
          'the caller\'s stream: the requests (not the ping), the '
          . 'cancellation, the result');

# after the call: its id is unknown
$mark = length error_log_since_start();
is(answer($sid, $ev->{id}, result => $roots, worker => $owner)->{status},
   202, 'an answer after the call ended: 202 ...');
ok(wait_until(sub { log_since($mark) =~ /\[info\] .*relayed request of a call that has ended \(call \d+\), dropped/ }, 5, 0.05),
   '... dropped, logged at info');

# ids the gateway never gave out
for my $id ('abc', 5, 'rmcp:1:2', 'rmcp:x:1:1', 'rmcp:1:2:3:4', 'rmcp:0:1:1')
{
    my $b = answer($sid, $id, result => {});
    is($b->{status}, 400, "response with id " . enc($id) . ": 400");
    is_deeply($b->{json}{error},
              { code => -32600, message => 'Invalid Request: the gateway '
                . 'sent no request with id ' . enc($id) },
              '... -32600, saying so');
}
$mark = length error_log_since_start();
is(answer($sid, 'rmcp:999999999:1:1', result => {})->{status}, 202,
   'an id naming a worker that does not exist: 202 ...');
like(log_since($mark), qr/\[info\] .*relayed request of a call of worker 999999999, which has no mailbox \(gone\?\), dropped/,
     '... dropped, logged at info');

my $log = error_log_since_start();
unlike($log, qr/\[(warn|error|crit|alert|emerg)\]/, 'no warning or error');



=== TEST 3: the server gets a clear error: no capability, a JSON-only caller, two calls in flight (and the progress token that names one)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s = asker(name => 's1');
my $owner = owner_of('s1');
my $other = other_worker($owner);

sub server_error {
    my ($s, $method, $params) = @_;
    my $rid = $s->request($method, $params);
    my $r = $s->wait_response($rid, 5);
    return $r && $r->{error};
}

# no capability declared
my $sid = session(capabilities => { elicitation => {} });
my ($h, $call) = ask($s, session => $sid, worker => $other);
is_deeply(server_error($s, 'sampling/createMessage', { messages => [] }),
          { code => -32601, message => 'sampling/createMessage: the caller '
            . 'of this call did not declare the sampling capability' },
          'no sampling capability: -32601, saying so');
is_deeply(server_error($s, 'elicitation/create',
                       { mode => 'url', message => 'go',
                         url => 'https://example.com/x',
                         elicitationId => 'e1' }),
          { code => -32601, message => 'elicitation/create: the caller of '
            . 'this call did not declare the elicitation (url mode) '
            . 'capability' },
          'elicitation {} is form mode only: url mode refused');
is_deeply(server_error($s, 'roots/list'),
          { code => -32601, message => 'roots/list: the caller of this call '
            . 'did not declare the roots capability' },
          'no roots capability: -32601');
$s->respond($call->{id}, { content => [] });
my $r = mcp_finish($h);
like($r->{headers}{'content-type'}, qr{^application/json},
     'the call itself goes on: its reply stays JSON');
is_deeply($r->{json}{result}, { content => [] }, '... with the result');

# a caller that takes only application/json
$sid = session(capabilities => { sampling => {} });
($h, $call) = ask($s, session => $sid, accept => 'application/json');
is_deeply(server_error($s, 'sampling/createMessage', { messages => [] }),
          { code => -32601, message => 'sampling/createMessage: the caller '
            . 'of this call cannot be reached: it accepts only '
            . 'application/json responses, not a stream' },
          'a JSON-only caller: -32601, saying so');
$s->respond($call->{id}, { content => [] });
$r = mcp_finish($h);
is_deeply($r->{json}{result}, { content => [] }, '... its call goes on');

# two calls in flight on the socket
my ($h1, $c1) = ask($s, session => $sid, id => 'one', worker => $owner,
                    meta => { progressToken => 'p1' });
my ($h2, $c2) = ask($s, session => $sid, id => 'two', worker => $other,
                    meta => { progressToken => 'p2' });
is_deeply(server_error($s, 'sampling/createMessage', { messages => [] }),
          { code => -32600, message => 'sampling/createMessage: ambiguous: '
            . '2 calls are in flight on this connection (name the call with '
            . 'params._meta.progressToken = its progress token)' },
          'two calls in flight: -32600 ambiguous');
my $token2 = $c2->{params}{_meta}{progressToken};
like($token2, qr/^rmcp-\d+-\d+$/, 'the server sees the gateway\'s token');
my $rid = $s->request('sampling/createMessage',
                      { messages => [], _meta => { progressToken => $token2 } });
my $ev = event($h2, 'sampling/createMessage');
ok($ev, 'the progress token names the call: relayed to its caller');
like($ev->{id}, qr/^rmcp:$other:/, '... held by the other worker');
is(answer($sid, $ev->{id}, result => { ok => 1 })->{status}, 202,
   '... answered');
is_deeply($s->wait_response($rid, 5)->{result}, { ok => 1 },
          '... the server got the answer');
ok(!grep({ ($_->{method} // '') eq 'sampling/createMessage' }
         events_of($h1->{buf})), '... the other call saw nothing');
$s->respond($c1->{id}, { content => [] });
$s->respond($c2->{id}, { content => [] });
is(mcp_finish($h1)->{json}{id}, 'one', 'call one ends');
is(mcp_finish($h2)->{json}{id}, 'two', 'call two ends');

my $log = error_log_since_start();
like($log, qr/\[info\] .*server "s1" request "sampling\/createMessage" not relayed, answering -32600: sampling\/createMessage: ambiguous/,
     'a request not relayed is logged at info with the reason');
unlike($log, qr/\[(warn|error|crit|alert|emerg)\]/, 'no warning or error');



=== TEST 4: the call's end fails the requests its caller did not answer: a timeout, a caller that leaves, the server's socket closing
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; reverse_mcp_call_timeout 1s; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s = asker(name => 's1');
my $owner = owner_of('s1');
my $other = other_worker($owner);
my $sid = session(capabilities => { sampling => {} });

for my $cw ($owner, $other) {
    my $where = $cw == $owner ? 'the owner' : 'the other worker';

    # the caller never answers: the call times out
    my ($h, $call) = ask($s, session => $sid, worker => $cw);
    my $rid = $s->request('sampling/createMessage', { messages => [] });
    my $ev = event($h, 'sampling/createMessage');
    ok($ev, "call on $where: relayed");
    my $r = mcp_finish($h, 10);
    is($r->{json}{error}{code}, -32002,
       "call on $where, never answered: the call times out (-32002)");
    my $resp = $s->wait_response($rid, 5);
    is($resp->{error}{code}, -32003,
       '... the server\'s request fails (-32003)');
    like($resp->{error}{message}, qr/^the call this request belongs to ended \(.*\) before its caller answered$/,
         '... saying so');
    ok($s->pump_until(sub { grep { $_->{params}{requestId} == $call->{id} }
                            $s->received('notifications/cancelled') }, 5),
       '... and the tools/call is cancelled');
    my $mark = length error_log_since_start();
    is(answer($sid, $ev->{id}, result => {})->{status}, 202,
       '... a late answer: 202');
    ok(wait_until(sub { log_since($mark) =~ /\[info\] .*relayed request of (a call that has ended|call \d+ that no longer waits)/ }, 5, 0.05),
       '... dropped, logged at info');

    # the caller goes away
    ($h, $call) = ask($s, session => $sid, worker => $cw);
    $rid = $s->request('sampling/createMessage', { messages => [] });
    ok(event($h, 'sampling/createMessage'), "call on $where: relayed");
    close $h->{sock};
    $resp = $s->wait_response($rid, 5);
    like($resp->{error}{message}, qr/^the call this request belongs to ended \(.*\) before its caller answered$/,
         "call on $where, the caller leaves: the server's request fails");
    ok($s->pump_until(sub { grep { $_->{params}{requestId} == $call->{id} }
                            $s->received('notifications/cancelled') }, 5),
       '... the tools/call is cancelled');
}

# the server's socket closes while its request waits for the caller
my ($h, $call) = ask($s, session => $sid, worker => $other);
$s->request('sampling/createMessage', { messages => [] });
my $ev = event($h, 'sampling/createMessage');
ok($ev, 'relayed');
$s->disconnect(1);
my $r = mcp_finish($h, 5);
is($r->{json}{error}{code}, -32003,
   'the socket closes: the caller gets -32003 after the request');
is_deeply([ map { $_->{method} // 'end' } @{ $r->{events} } ],
          [ 'sampling/createMessage', 'end' ], '... on the same stream');
my $mark = length error_log_since_start();
is(answer($sid, $ev->{id}, result => {})->{status}, 202,
   'a late answer: 202 ...');
ok(wait_until(sub { log_since($mark) =~ /\[info\] .*relayed request of a call that has ended/ }, 5, 0.05),
   '... dropped, logged at info');
--- no_error_log
[alert]
[crit]



=== TEST 5: the official SDK client with sampling and elicitation handlers through /mcp, the SDK's McpServer behind it
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my @missing = grep { !-f "$NodeModules/$_/package.json" }
              qw(@modelcontextprotocol/sdk ws zod);
die "missing npm packages (@missing): run `npm ci`\n" if @missing;

my $slog = "$ServRoot/logs/relay-server.log";
my $srv = node_start($slog, 't/interop/conformance-tools-server.mjs',
           '--url', "ws://127.0.0.1:$ServerPort/ws",
           '--name', 's2', '--token', 't2');
ok(wait_until(sub {
    my ($a) = grep { $_->{name} eq 'a1' } @{ status_json()->{agents} };
    return grep { $_->{name} eq 's2' } @{ $a->{servers} || [] };
}, 15, 0.05), 'the SDK server registered as s2') or diag(slurp($slog));

my $clog = "$ServRoot/logs/relay-client.log";
for my $i (1 .. 3) {
    my $pid = node_start($clog, 't/interop/sdk-relay-client.mjs',
                         '--url', "http://127.0.0.1:$ServerPort/mcp",
                         '--server', 's2');
    my $rc = node_wait($pid, 30);
    my $out = slurp($clog);
    my ($json) = $out =~ /^(\{.*\})$/m;
    my $o = eval { dec($json) } // {};
    is($rc, 0, "run $i: the SDK client's checks pass")
        or diag("$out\n" . slurp($slog));
    is($o->{samplingResult}, 'LLM response: echo: hello there',
       "run $i: sampling answered by the client's handler");
}

kill 'TERM', $srv;
ok(defined node_wait($srv, 5), 'the SDK server stopped');
like(error_log_since_start(), qr/\[info\] .*server "s2" request \d+ answered by the caller/,
     'the relays are logged');
--- no_error_log
[alert]
[crit]



=== TEST 6: 2026-07-28 callers: the server's requests as input_required, the call parked on its owner, the retries (on either worker) answer them and take the call over
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s = asker(name => 's1');
my $owner = owner_of('s1');
my $other = other_worker($owner);
my $caps = { sampling => {}, elicitation => {} };

# one modern tools/call round on worker $w: the response
sub round {
    my ($s, $w, $id, %p) = @_;
    my $n = @{ $s->{calls} || [] };
    my $h = mcp_start(modern($id, 'tools/call',
                             { name => 'ask', arguments => { q => 1 }, %p },
                             capabilities => $caps),
                      path => '/mcp/s1', worker => $w, servers => [ $s ]);
    return $h;
}

for my $case ([ $owner, $other, $owner ], [ $other, $other, $owner ]) {
    my ($w1, $w2, $w3) = @$case;
    my $what = "rounds on " . join(', ', map { $_ == $owner ? 'owner'
                                                            : 'other' } @$case);
    my $calls = @{ $s->{calls} || [] };

    # round 1: the server asks for a sample
    my $h = round($s, $w1, 'r1');
    mcp_poll($h, 5, sub { @{ $s->{calls} || [] } > $calls })
        or die "the server did not get the tools/call\n";
    my $call = $s->{calls}[-1];
    my $sp = { messages => [ { role => 'user', content =>
                 { type => 'text', text => 'q' } } ], maxTokens => 5 };
    my $rid1 = $s->request('sampling/createMessage', $sp);
    my $r = mcp_finish($h);
    is($r->{status}, 200, "$what: round 1: 200");
    my $res = $r->{json}{result} // {};
    is($res->{resultType}, 'input_required', "$what: input_required");
    my @keys = keys %{ $res->{inputRequests} || {} };
    is(scalar @keys, 1, "$what: one input request");
    like($keys[0], qr/^rmcp:\d+:\d+:\d+$/, "$what: keyed by the gateway id");
    is_deeply($res->{inputRequests}{ $keys[0] },
              { method => 'sampling/createMessage', params => $sp },
              "$what: the server's request, as sent");
    like($res->{requestState}, qr/^rmcp:$owner:\d+:\d+$/,
         "$what: a requestState naming the owner");
    $s->pump(0.2);
    ok(!grep({ $_->{params}{requestId} == $call->{id} }
             $s->received('notifications/cancelled')),
       "$what: the tools/call is not cancelled: it waits, parked");

    # round 2: the answer; the server asks again (elicitation)
    my $answer = { role => 'assistant', model => 'm',
                   content => { type => 'text', text => 'a' } };
    $h = round($s, $w2, 'r2', inputResponses => { $keys[0] => $answer },
               requestState => $res->{requestState});
    my $resp = $s->wait_response($rid1, 5);
    is_deeply($resp, { jsonrpc => '2.0', id => $rid1, result => $answer },
              "$what: round 2: the server got the answer with its id");
    my $ep = { message => 'name?', requestedSchema => { type => 'object' } };
    my $rid2 = $s->request('elicitation/create', $ep);
    $r = mcp_finish($h);
    my $res2 = $r->{json}{result} // {};
    is($res2->{resultType}, 'input_required', "$what: input_required again");
    my ($k2) = keys %{ $res2->{inputRequests} || {} };
    is($res2->{inputRequests}{$k2}{method}, 'elicitation/create',
       "$what: the elicitation");
    isnt($res2->{requestState}, $res->{requestState},
         "$what: a new requestState");

    # the first requestState is spent
    my $stale = mcp(modern('x', 'tools/call',
                           { name => 'ask', arguments => {},
                             requestState => $res->{requestState},
                             inputResponses => {} },
                           capabilities => $caps),
                    path => '/mcp/s1', servers => [ $s ]);
    is($stale->{json}{error}{code}, -32602, "$what: a spent requestState: "
       . "-32602");
    like($stale->{json}{error}{message},
         qr/requestState names no call .*waiting for input/, '... saying so');

    # round 3: the answer; the server finishes
    my $ea = { action => 'accept', content => { name => 'ada' } };
    $h = round($s, $w3, 'r3', inputResponses => { $k2 => $ea },
               requestState => $res2->{requestState});
    is_deeply($s->wait_response($rid2, 5)->{result}, $ea,
              "$what: round 3: the server got the elicitation answer");
    $s->respond($call->{id}, { content => [ { type => 'text',
                                              text => 'done' } ] });
    $r = mcp_finish($h);
    is($r->{json}{id}, 'r3', "$what: the last round's id");
    is($r->{json}{result}{resultType}, 'complete', "$what: complete");
    is($r->{json}{result}{content}[0]{text}, 'done', "$what: the result");
}

# a request the server sends while the call is parked: asked in the next
# round, with the answers of this one
{
    my $calls = @{ $s->{calls} };
    my $h = round($s, $other, 'q1');
    mcp_poll($h, 5, sub { @{ $s->{calls} } > $calls });
    my $call = $s->{calls}[-1];
    my $ra = $s->request('elicitation/create', { message => 'm',
                                                 requestedSchema => {} });
    my $res = mcp_finish($h)->{json}{result} // {};
    is($res->{resultType}, 'input_required', 'parked: input_required');
    my $rb = $s->request('sampling/createMessage', { messages => [] });
    $s->pump(0.3);
    ok(!exists $s->{responses}{$rb}, 'a request while parked waits');
    my ($ka) = keys %{ $res->{inputRequests} };
    $h = round($s, $owner, 'q2',
               inputResponses => { $ka => { action => 'decline' },
                                   'not-ours' => {} },
               requestState => $res->{requestState});
    is_deeply($s->wait_response($ra, 5)->{result}, { action => 'decline' },
              'the retry answers the first request (an unknown key is '
              . 'ignored)');
    my $res2 = mcp_finish($h)->{json}{result} // {};
    is($res2->{resultType}, 'input_required',
       'the request made while parked: input_required again');
    is_deeply([ map { $_->{method} } values %{ $res2->{inputRequests} } ],
              [ 'sampling/createMessage' ], '... with it');
    my ($kb) = keys %{ $res2->{inputRequests} };
    $h = round($s, $other, 'q3', inputResponses => { $kb => { ok => 1 } },
               requestState => $res2->{requestState});
    is_deeply($s->wait_response($rb, 5)->{result}, { ok => 1 },
              '... answered in the third round');
    $s->respond($call->{id}, { content => [] });
    is(mcp_finish($h)->{json}{result}{resultType}, 'complete', 'complete');
}

# a requestState the gateway never gave out
my $bad = mcp(modern('b', 'tools/call', { name => 'ask', arguments => {},
                                          requestState => 'abc' },
                     capabilities => $caps),
              path => '/mcp/s1', servers => [ $s ]);
is_deeply($bad->{json}{error}, { code => -32602, message => 'Invalid '
          . 'params: requestState is not one this gateway gave out' },
          'a requestState the gateway never gave out: -32602');

# no capability: the server is told, the caller gets 400 + -32021 (t/016)
my $n = @{ $s->{calls} };
my $h = mcp_start(modern('nc', 'tools/call', { name => 'ask',
                                               arguments => {} }),
                  path => '/mcp/s1', servers => [ $s ]);
mcp_poll($h, 5, sub { @{ $s->{calls} } > $n });
my $rid = $s->request('sampling/createMessage', { messages => [] });
is_deeply($s->wait_response($rid, 5)->{error},
          { code => -32601, message => 'sampling/createMessage: the caller '
            . 'of this call did not declare the sampling capability' },
          'a 2026-07-28 caller without the capability: -32601');
my $nc = mcp_finish($h);
is($nc->{status}, 400, '... the caller: 400');
is($nc->{json}{error}{code}, -32021,
   '... -32021 MissingRequiredClientCapability');

my $log = error_log_since_start();
like($log, qr/\[info\] .*call \d+ to server "s1" parked until its caller's next round/,
     'parking is logged at info');
like($log, qr/\[info\] .*call \d+ to server "s1" resumed by its caller's next round/,
     'resuming too');
unlike($log, qr/rmcp:\d+:\d+:\d+/,
       'requestStates and gateway ids never reach the log');
unlike($log, qr/\[(warn|error|crit|alert|emerg)\]/, 'no warning or error');



=== TEST 7: a parked call times out: the server's request fails, the retry gets -32602
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; reverse_mcp_call_timeout 1s; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s = asker(name => 's1');
my $caps = { sampling => {} };
my $h = mcp_start(modern('t1', 'tools/call', { name => 'ask',
                                               arguments => {} },
                         capabilities => $caps),
                  path => '/mcp/s1', worker => other_worker(owner_of('s1')),
                  servers => [ $s ]);
mcp_poll($h, 5, sub { @{ $s->{calls} || [] } });
my $call = $s->{calls}[0];
my $rid = $s->request('sampling/createMessage', { messages => [] });
my $res = mcp_finish($h)->{json}{result};
is($res->{resultType}, 'input_required', 'input_required');
my $resp = $s->wait_response($rid, 5);
like($resp->{error}{message}, qr/^the call this request belongs to ended \(.*\) before its caller answered$/,
     'the parked call times out: the server\'s request fails');
ok($s->pump_until(sub { grep { $_->{params}{requestId} == $call->{id} }
                        $s->received('notifications/cancelled') }, 5),
   '... the tools/call is cancelled');
my $late = mcp(modern('t2', 'tools/call',
                      { name => 'ask', arguments => {},
                        requestState => $res->{requestState},
                        inputResponses => { (keys %{ $res->{inputRequests} })[0]
                                            => { role => 'assistant' } } },
                      capabilities => $caps),
               path => '/mcp/s1', servers => [ $s ]);
is($late->{json}{error}{code}, -32602, 'the retry after that: -32602');
like(error_log_since_start(), qr/\[info\] .*parked for its caller's input, ended: /,
     'logged at info');
--- no_error_log
[alert]
[crit]



=== TEST 8: the chat API's tool calls: the server's sampling/createMessage is answered by the chat's model; elicitation gets a clear error; the loop goes on
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
my $s = up(name => 's1', tools => [ tool('ask') ], on_request => sub {
    my ($srv, $m) = @_;
    return undef unless $m->{method} eq 'tools/call';
    my $rid = $srv->request('sampling/createMessage', {
        messages => [ { role => 'user', content =>
                          { type => 'text', text => 'capital of France?' } },
                      { role => 'assistant', content =>
                          { type => 'image', data => 'AAAA',
                            mimeType => 'image/png' } } ],
        systemPrompt => 'Answer in one word.', maxTokens => 7 });
    my $sample = $srv->wait_response($rid, 10) // {};
    my $eid = $srv->request('elicitation/create',
                            { message => 'name?', requestedSchema => {} });
    my $elicit = $srv->wait_response($eid, 5) // {};
    $srv->{sample} = $sample;
    $srv->{elicit} = $elicit;
    return { content => [ { type => 'text',
                            text => $sample->{result}{content}{text}
                                    // 'no sample' } ] };
});
$main::LLM->script({ tool_calls => [ { name => 's1__ask',
                                       arguments => {} } ] },
                   { text => 'Paris' },
                   { text => 'done' });
my $r = chat(msg => { message => 'ask', context_id => 'rq' },
             servers => [ $s ]);
is($r->{status}, 200, 'the chat answers');
is($r->{json}{answer}, 'done', '... after the tool round');
is_deeply($s->{sample}{result}, { role => 'assistant', model => 'm',
                                  content => { type => 'text',
                                               text => 'Paris' },
                                  stopReason => 'endTurn' },
          'the server\'s sampling request: answered by the chat\'s model');
my @req = $main::LLM->requests;
is(scalar @req, 3, 'the model saw three requests (round, sample, round)');
my $sreq = $req[1]{body} // {};
is_deeply([ map { $_->{content} } @{ $sreq->{messages} || [] } ],
          [ 'Answer in one word.', 'capital of France?',
            '[image content not shown]' ],
          '... the sample: its system prompt and messages, no tools');
is($sreq->{max_tokens}, 7, '... its maxTokens');
ok(!exists $sreq->{tools}, '... no tools');
is_deeply($s->{elicit}{error},
          { code => -32601, message => 'elicitation/create: the caller of '
            . 'this call did not declare the elicitation capability' },
          'elicitation: -32601 (a chat has no user to ask)');
is($r->{json}{tool_calls}[0]{result}, 'Paris',
   'the tool\'s result carries the sample');
--- error_log
the chat's model answers it
--- no_error_log
[alert]
[crit]
