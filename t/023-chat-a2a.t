# A2A (reverse_mcp_a2a, protocol v0.3 over JSON-RPC): the Agent Card,
# message/send and message/stream of the seed's story (status updates
# "thinking" and "Using tool: X", the answer as an artifact), tasks/get and
# tasks/cancel from any worker (a running task canceled by another
# request), failed and rejected tasks, JSON-RPC errors, and the official A2A
# JavaScript SDK (@a2a-js/sdk, its v0.3 compatibility layer) sending and
# streaming a message.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::FakeLLM;
use Test::Nginx::ChatUtil;
use POSIX ();

master_on();
workers(2);

our $LLM = Test::Nginx::FakeLLM->start;
$ENV{TEST_NGINX_LLM_URL} = $LLM->url;
our $Node = $ENV{TEST_NGINX_NODE}
            // (-x '/usr/bin/node' ? '/usr/bin/node' : 'node');
our $Sdk = $ENV{TEST_NGINX_A2A_SDK} // "$RepoRoot/node_modules/\@a2a-js/sdk";

run_tests();

$LLM->stop;

sub rpc_msg {
    my ($id, $method, $params) = @_;
    return { jsonrpc => '2.0', id => $id, method => $method,
             defined $params ? (params => $params) : () };
}

sub user_msg {
    my ($text, %o) = @_;
    return { message => { kind => 'message', messageId => "m-$text",
                          role => 'user',
                          parts => [ { kind => 'text', text => $text } ],
                          %o } };
}

# a JSON-RPC request to /a2a/; stream: Accept text/event-stream
sub rpc {
    my ($method, $params, %o) = @_;
    return chat(path => '/a2a/', msg => rpc_msg($o{id} // 1, $method, $params),
                sse => $o{stream}, %o);
}

# the SDK client in a child process, pumping the reverse servers meanwhile;
# returns its output lines decoded
sub sdk {
    my ($servers, @args) = @_;
    my $out = "$ServRoot/logs/sdk.out";
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>>', "$ServRoot/logs/sdk.err";
        no warnings 'exec';
        exec { $main::Node } $main::Node,
             "$RepoRoot/t/interop/a2a-client.mjs", $main::Sdk,
             "http://127.0.0.1:$ServerPort/a2a/", @args;
        POSIX::_exit(127);
    }
    my $st;
    wait_until(sub {
        $_->pump(0.02) for grep { !$_->{closed} } @$servers;
        my $w = waitpid($pid, POSIX::WNOHANG());
        $st = $? if $w == $pid;
        return $w == $pid;
    }, 30, 0.01) or do { kill 'KILL', $pid; waitpid $pid, 0;
                          die "the SDK client did not end\n" };
    return { status => $st >> 8,
             lines => [ map { dec($_) } grep { /\S/ }
                        split /\n/, slurp_file($out) ] };
}

__DATA__

=== TEST 1: the Agent Card at the well-known paths
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent home {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
    description "The home assistant";
}
--- config
location = /status { reverse_mcp_status; }
location /a2a/ { reverse_mcp_a2a home; }
location = /.well-known/agent-card.json {
    rewrite ^ /a2a/.well-known/agent-card.json last;
}
--- test_code
for my $path ('/a2a/.well-known/agent-card.json', '/.well-known/agent-card.json',
              '/a2a/.well-known/agent.json') {
    my $r = http_get($path, headers => [Host => "gw.example:$ServerPort"]);
    is($r->{status}, 200, "$path: 200");
    like($r->{headers}{'content-type'}, qr{^application/json}, '... JSON');
    my $c = dec($r->{body});
    is($c->{protocolVersion}, '0.3.0', '... protocolVersion');
    is($c->{name}, 'home', '... the agent name');
    is($c->{description}, 'The home assistant', '... its description');
    is($c->{url}, "http://gw.example:$ServerPort/a2a/", '... the endpoint');
    is($c->{preferredTransport}, 'JSONRPC', '... JSON-RPC');
    ok($c->{capabilities}{streaming}, '... streaming');
    ok(!$c->{capabilities}{pushNotifications}, '... no push');
    is(scalar @{ $c->{skills} }, 1, '... one skill');
    is($c->{skills}[0]{id}, 'ai_chat', '... the chat skill');
    is_deeply($c->{defaultInputModes}, ['text/plain'], '... text in');
}
my $r = chat(path => '/a2a/', method => 'PUT', raw => '{}');
is($r->{status}, 405, 'PUT: 405');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 2: message/send: the seed's story as a completed task; tasks/get from both workers; JSON-RPC errors
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /a2a/ { reverse_mcp_a2a a1; }
--- test_code
$main::LLM->reset;
my $s = exec_server(name => 's1');
my $r = main::rpc('message/send', main::user_msg('run ls -l /',
                  contextId => 'ctx-a'), id => 'req-1', servers => [$s]);
is($r->{status}, 200, 'status 200');
is($r->{json}{id}, 'req-1', 'the id');
my $t = $r->{json}{result};
is($t->{kind}, 'task', 'a task');
like($t->{id}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
     '... a UUID');
is($t->{contextId}, 'ctx-a', '... the context');
is($t->{status}{state}, 'completed', '... completed');
like($t->{status}{timestamp}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
     '... a timestamp');
like($s->{last_output}, qr/^d\S+\s.*\betc$/m, 'the tool ran ls -l /');
is($t->{artifacts}[0]{parts}[0]{text}, "Tool output:\n$s->{last_output}",
   'the answer artifact holds the output of ls -l /');
is($t->{artifacts}[0]{parts}[0]{kind}, 'text', '... a text part');
is($t->{history}[0]{role}, 'user', 'history: the user message');
is($t->{history}[0]{messageId}, 'm-run ls -l /', '... with its id');
is($t->{metadata}{tool_calls}[0]{name}, 's1__exec_cmd',
   'metadata: the tool calls');
for my $i (1 .. 6) {
    my $g = main::rpc('tasks/get', { id => $t->{id} }, id => $i);
    is_deeply($g->{json}{result}, $t, "tasks/get $i: the same task");
}
$r = main::rpc('tasks/cancel', { id => $t->{id} });
is($r->{json}{error}{code}, -32002, 'tasks/cancel of a completed task: -32002');
like($r->{json}{error}{message}, qr/it is completed/, '... says why');
$r = main::rpc('tasks/get', { id => 'nope' });
is($r->{json}{error}{code}, -32001, 'an unknown task: -32001');

# the same conversation, a second message: the LLM sees the first turn
main::rpc('message/send', main::user_msg('and again', contextId => 'ctx-a'));
my $m = ($main::LLM->requests)[-1]{body}{messages};
is($m->[0]{content}, 'run ls -l /', 'the context keeps the history');

$r = chat(path => '/a2a/', raw => '{"jsonrpc":');
is($r->{json}{error}{code}, -32700, 'parse error: -32700');
ok(exists $r->{json}{id} && !defined $r->{json}{id}, '... id null');
$r = chat(path => '/a2a/', raw => '{"jsonrpc":"1.0","id":1,"method":"x"}');
is($r->{json}{error}{code}, -32600, 'not JSON-RPC 2.0: -32600');
$r = main::rpc('tasks/list', {});
is($r->{json}{error}{code}, -32601, 'tasks/list: -32601');
$r = main::rpc('message/send', { message => { parts => [] } });
is($r->{json}{error}{code}, -32602, 'no text: -32602');
$r = main::rpc('message/send', main::user_msg('x', contextId => 'a b'));
is($r->{json}{error}{code}, -32602, 'a bad contextId: -32602');
$r = main::rpc('tasks/pushNotificationConfig/set', { taskId => 'x' });
is($r->{json}{error}{code}, -32003, 'push notifications: -32003');
$r = chat(path => '/a2a/', msg => main::rpc_msg(1, 'tasks/get', { id => 'x' }),
          content_type => 'text/plain');
is($r->{status}, 415, 'text/plain: 415');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 3: message/stream: the task, status updates while thinking and calling a tool, the answer artifact, the final status
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=anthropic model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /a2a/ { reverse_mcp_a2a a1; }
--- test_code
$main::LLM->reset;
my $s = exec_server(name => 's1');
my $r = main::rpc('message/stream', main::user_msg('run echo streamed'),
                  id => 7, stream => 1, servers => [$s]);
is($r->{status}, 200, 'status 200');
like($r->{headers}{'content-type'}, qr{^text/event-stream}, 'SSE');
my @ev = map { $_->{data} } @{ $r->{events} };
is($_->{id}, 7, 'every event answers id 7') for @ev;
my @res = map { $_->{result} } @ev;
is($res[0]{kind}, 'task', 'first: the task');
is($res[0]{status}{state}, 'submitted', '... submitted');
my $id = $res[0]{id};
my @st = grep { $_->{kind} eq 'status-update' } @res;
is_deeply([ map { $_->{status}{message}{parts}[0]{text} // '' } @st ],
          [ 'thinking', 'Using tool: s1__exec_cmd', 'Tool s1__exec_cmd returned',
            'thinking', '' ], 'status updates: thinking, Using tool: X, ...');
is_deeply([ map { $_->{status}{state} } @st ],
          [ qw(working working working working completed) ], '... states');
is_deeply([ map { $_->{final} ? 1 : 0 } @st ], [0, 0, 0, 0, 1],
          '... the last is final');
is($_->{taskId}, $id, 'status-update of the task') for @st;
my ($art) = grep { $_->{kind} eq 'artifact-update' } @res;
is($art->{artifact}{parts}[0]{text}, "Tool output:\nstreamed\n",
   'the answer artifact');
ok($art->{lastChunk}, '... lastChunk');
is($res[-1]{kind}, 'status-update', 'the final status last');
my $g = main::rpc('tasks/get', { id => $id });
is($g->{json}{result}{status}{state}, 'completed', 'tasks/get: completed');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 4: failures: a failed task says why; a busy conversation rejects; a running task canceled from another request
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL
        api_key=sk-a2a-secret-77;
}
--- config
location = /status { reverse_mcp_status; }
location /a2a/ { reverse_mcp_a2a a1; }
--- test_code
my $L = $main::LLM;
$L->reset;
$L->script({ status => 401, error_message => 'Incorrect API key:',
             echo_key => 1 });
my $r = main::rpc('message/send', main::user_msg('hi'));
my $t = $r->{json}{result};
is($t->{status}{state}, 'failed', 'an LLM failure: a failed task');
is($t->{status}{message}{parts}[0]{text},
   'the LLM API answered HTTP 401 (api_error): Incorrect API key: [redacted]',
   '... its status message says why');
is($t->{metadata}{error}{type}, 'llm_http', '... metadata: the error type');
is($t->{metadata}{error}{upstream_status}, 401, '... and status');

$L->script({ text => 'x', cut_after => 2 });
$r = main::rpc('message/stream', main::user_msg('hi'), stream => 1);
my $last = $r->{events}[-1]{data}{result};
is($last->{status}{state}, 'failed', 'a stream cut: the final status failed');
ok($last->{final}, '... final');
like($last->{status}{message}{parts}[0]{text}, qr/broke before the reply/,
     '... says why');

# a long answer: another message of the same context is rejected, then a
# tasks/cancel from another connection stops it
$L->script({ text => 'slow', delay => 5 });
my $h = chat_start(path => '/a2a/', sse => 1,
                   msg => main::rpc_msg(1, 'message/stream',
                                        main::user_msg('slow', contextId => 'c1')));
chat_poll($h, 5, sub { $_[0] =~ /"kind":"task"/ }) or die "no task event\n";
my ($id) = $h->{buf} =~ /"kind":"task","id":"([^"]+)"/;
wait_until(sub { $L->pending == 0 }, 5, 0.02);
$r = main::rpc('message/send', main::user_msg('meanwhile', contextId => 'c1'));
is($r->{json}{result}{status}{state}, 'rejected', 'the busy context: rejected');
like($r->{json}{result}{status}{message}{parts}[0]{text},
     qr/answering another message/, '... says why');
my $g = main::rpc('tasks/get', { id => $id });
is($g->{json}{result}{status}{state}, 'working', 'tasks/get: working');
my $c = main::rpc('tasks/cancel', { id => $id });
is($c->{json}{result}{status}{state}, 'canceled', 'tasks/cancel: canceled');
$r = chat_finish($h, 5);
cmp_ok($r->{time}, '<', 3, 'the stream ended soon after the cancel');
my @res = map { $_->{data}{result} } @{ $r->{events} };
is($res[-1]{status}{state}, 'canceled', '... with a final canceled status');
ok($res[-1]{final}, '... final');
$g = main::rpc('tasks/get', { id => $id });
is($g->{json}{result}{status}{state}, 'canceled', 'tasks/get: canceled');
$r = main::rpc('message/send', main::user_msg('now', contextId => 'c1'));
is($r->{json}{result}{status}{state}, 'completed',
   'the conversation is free again');
--- error_log eval
[ qr/a2a task \S+ canceled/, qr/chat of context "c1" canceled/ ]
--- no_error_log
[alert]
[crit]
sk-a2a-secret-77



=== TEST 5: the official A2A JavaScript SDK client sends and streams a message, gets and cancels tasks
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /a2a/ { reverse_mcp_a2a a1; }
--- test_code
if (!-d $main::Sdk) {
    pass("SKIP: no \@a2a-js/sdk in $main::Sdk (npm install \@a2a-js/sdk)");
    return;
}
$main::LLM->reset;
my $s = exec_server(name => 's1');
my $r = main::sdk([$s], 'send', 'check what is in root, run ls -l /', 'sdk-1');
is($r->{status}, 0, 'send: the SDK is happy');
my $t = $r->{lines}[0];
is($t->{kind}, 'task', 'send: a task');
is($t->{state}, 'TASK_STATE_COMPLETED', '... completed');
is($t->{contextId}, 'sdk-1', '... the context');
like($s->{last_output}, qr/^d\S+\s.*\betc$/m, '... the tool ran ls -l /');
is($t->{artifacts}[0], "Tool output:\n$s->{last_output}",
   '... the answer has its output');

$r = main::sdk([$s], 'stream', 'run echo from-the-sdk', 'sdk-2');
is($r->{status}, 0, 'stream: the SDK is happy');
my @k = map { $_->{kind} } @{ $r->{lines} };
is($k[0], 'task', 'stream: the task first');
is_deeply([ grep { $_ } map { $_->{text} } grep { $_->{kind} eq 'status' }
            @{ $r->{lines} } ],
          [ 'thinking', 'Using tool: s1__exec_cmd',
            'Tool s1__exec_cmd returned', 'thinking' ],
          '... status updates');
my ($art) = grep { $_->{kind} eq 'artifact' } @{ $r->{lines} };
is($art->{text}, "Tool output:\nfrom-the-sdk\n", '... the answer artifact');
is($r->{lines}[-1]{state}, 'TASK_STATE_COMPLETED', '... completed');

$r = main::sdk([$s], 'get', $t->{id});
is($r->{lines}[0]{state}, 'TASK_STATE_COMPLETED', 'get: completed');
is($r->{lines}[0]{id}, $t->{id}, '... that task');
$r = main::sdk([$s], 'cancel', $t->{id});
is($r->{status}, 1, 'cancel of a completed task: an error');
like($r->{lines}[0]{error}, qr/cannot be canceled/, '... TaskNotCancelable');
--- no_error_log
[alert]
[crit]
[error]
