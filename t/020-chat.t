# The chat API (reverse_mcp_chat): the seed's story end to end (a reverse
# server with exec_cmd connects, "run ls -l /" makes the model call it, the
# answer holds the real output), both providers streamed and not, SSE
# progress, the CLI commands, tool results of every content type, tools
# that appear and vanish between rounds, failing and unknown tools,
# max_rounds, history in the shared zone (another worker continues it,
# size and idle limits, busy conversations, agents kept apart), a client
# that goes away, and the proof that the worker serves other requests while
# the LLM takes 5 s.  The LLM is t/lib/Test/Nginx/FakeLLM.pm (the real
# OpenAI and Anthropic wire formats), reached by the real libcurl code.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::FakeLLM;
use Test::Nginx::ChatUtil;
use Time::HiRes ();

master_on();
workers(2);

our $LLM = Test::Nginx::FakeLLM->start;
$ENV{TEST_NGINX_LLM_URL} = $LLM->url;
$ENV{RMCP_TEST_LLM_KEY} = 'sk-from-env-5678';
env_to_nginx('RMCP_TEST_LLM_KEY');

run_tests();

$LLM->stop;

__DATA__

=== TEST 1: the seed's story (OpenAI, streamed from the LLM, JSON reply): the model calls exec_cmd, the answer has the real output of ls -l /; the server leaves and /tools is empty
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=openai model=gpt-test base_url=$TEST_NGINX_LLM_URL
        api_key=sk-test-key-1234 timeout=10s;
    llm_system "You are the gateway's assistant.";
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
my $s = exec_server(name => 's1');
my $r = chat(msg => { message => 'check what is in root, run ls -l /' },
             servers => [$s]);
is($r->{status}, 200, 'chat: 200');
like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON');
my $ls = $s->{last_output};
my ($etc) = grep { /^d\S+\s.*\betc$/ } split /\n/, $ls // '';
ok($etc, "the tool ran ls -l / (its etc line: $etc)");
like($r->{json}{answer}, qr/^Tool output:\n/, 'the answer');
is($r->{json}{answer}, "Tool output:\n$ls",
   'the answer holds the real output of ls -l /');
is($r->{json}{rounds}, 2, 'two rounds');
like($r->{json}{context_id}, qr/^[0-9a-f]{32}$/, 'a new context id');
my $tc = $r->{json}{tool_calls};
is(scalar @$tc, 1, 'one tool call');
is($tc->[0]{name}, 's1__exec_cmd', '... named <server>__<tool>');
is($tc->[0]{server}, 's1', '... server');
is($tc->[0]{tool}, 'exec_cmd', '... tool');
is_deeply($tc->[0]{arguments}, { command => 'ls -l /' }, '... arguments');
ok(!$tc->[0]{is_error}, '... not an error');
ok(index($tc->[0]{result}, $etc) >= 0, '... its result');

my ($call) = $s->received('tools/call');
is($call->{params}{name}, 'exec_cmd', 'the server got tools/call exec_cmd');
is_deeply($call->{params}{arguments}, { command => 'ls -l /' },
          '... with the arguments');

my @req = $main::LLM->requests;
is(scalar @req, 2, 'two LLM requests');
is($req[0]{path}, '/v1/chat/completions', 'OpenAI path');
is($req[0]{headers}{authorization}, 'Bearer sk-test-key-1234', 'the key');
like($req[0]{headers}{accept}, qr{text/event-stream}, 'Accept SSE');
ok($req[0]{body}{stream}, 'stream: true');
is($req[0]{body}{model}, 'gpt-test', 'model');
is_deeply($req[0]{body}{messages}, [
    { role => 'system', content => "You are the gateway's assistant." },
    { role => 'user', content => 'check what is in root, run ls -l /' } ],
    'system and user messages');
my ($fn) = grep { $_->{function}{name} eq 's1__exec_cmd' }
           @{ $req[0]{body}{tools} };
is($fn->{type}, 'function', 'tools: OpenAI functions');
is($fn->{function}{description}, exec_tool()->{description},
   '... the description');
is_deeply($fn->{function}{parameters}, exec_tool()->{inputSchema},
          '... parameters = inputSchema');
is(scalar @{ $req[0]{body}{tools} }, 2, 'both tools of s1');
my @m = @{ $req[1]{body}{messages} };
is($m[-2]{role}, 'assistant', 'round 2: the assistant turn');
is($m[-2]{tool_calls}[0]{function}{name}, 's1__exec_cmd', '... its call');
is($m[-2]{tool_calls}[0]{function}{arguments}, '{"command":"ls -l /"}',
   '... arguments as a JSON string');
is($m[-1]{role}, 'tool', '... the tool result');
is($m[-1]{tool_call_id}, $m[-2]{tool_calls}[0]{id}, '... for that call');
ok(index($m[-1]{content}, $etc) >= 0, '... the output');

$s->disconnect;
wait_until(sub { !@{ status_json()->{agents}[0]{servers} } }, 5, 0.05)
    or die "s1 still registered\n";
my $t = chat(msg => { message => '/tools' });
is($t->{status}, 200, '/tools: 200');
is($t->{json}{answer}, "No tools available.\n", '/tools: nothing now');
is($t->{json}{command}, '/tools', '... a command');
is(scalar $main::LLM->requests, 2, 'commands do not reach the LLM');
--- no_error_log
[alert]
[crit]
[error]
sk-test-key-1234



=== TEST 2: the seed's story over SSE with Anthropic (streamed): status "thinking", "Using tool: X", the tool result, text deltas, the answer; Anthropic's wire format
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=anthropic model=claude-test base_url=$TEST_NGINX_LLM_URL
        api_key=ak-test-key-9876 temperature=0.2 max_tokens=1000;
    llm_system "Be brief.";
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
my $s = exec_server(name => 's1');
my $r = chat(msg => { message => 'run ls -l /', context_id => 'sse-1' },
             servers => [$s], sse => 1);
is($r->{status}, 200, 'SSE: 200');
like($r->{headers}{'content-type'}, qr{^text/event-stream}, 'event stream');
is($r->{headers}{'cache-control'}, 'no-cache', 'no-cache');
ok($r->{complete}, 'the stream ended properly');
my @ev = @{ $r->{events} };
my @names = map { $_->{event} } @ev;
is($names[0], 'status', 'first: status');
is($ev[0]{data}{text}, 'thinking', '... thinking');
is($ev[0]{data}{round}, 1, '... round 1');
is($ev[0]{data}{tools}, 2, '... with 2 tools');
is($ev[1]{event}, 'status', 'then a status');
is($ev[1]{data}{text}, 'Using tool: s1__exec_cmd', '... Using tool: X');
is_deeply($ev[1]{data}{arguments}, { command => 'ls -l /' },
          '... with its arguments');
is($ev[2]{event}, 'tool_result', 'then the tool result');
ok(!$ev[2]{data}{is_error}, '... not an error');
like($ev[2]{data}{result}, qr/\betc\n/, '... the output');
is($ev[3]{data}{text}, 'thinking', 'round 2: thinking');
is($ev[3]{data}{round}, 2, '... round 2');
my @deltas = grep { $_->{event} eq 'delta' } @ev;
ok(@deltas > 3, 'text deltas as they come');
is($ev[-1]{event}, 'answer', 'last: the answer');
my $answer = $ev[-1]{data}{answer};
is(join('', map { $_->{data}{text} } @deltas), $answer,
   'the deltas make the answer');
like($answer, qr/^Tool output:\n.*\betc\n/s, 'the answer has the output');
is($ev[-1]{data}{context_id}, 'sse-1', 'the context id');
is($ev[-1]{data}{tool_calls}[0]{name}, 's1__exec_cmd', 'tool_calls');

my @req = $main::LLM->requests;
is(scalar @req, 2, 'two LLM requests');
is($req[0]{path}, '/v1/messages', 'Anthropic path');
is($req[0]{headers}{'x-api-key'}, 'ak-test-key-9876', 'x-api-key');
is($req[0]{headers}{'anthropic-version'}, '2023-06-01', 'anthropic-version');
my $b = $req[0]{body};
is($b->{system}, 'Be brief.', 'system at the top');
is($b->{max_tokens}, 1000, 'max_tokens');
is($b->{temperature}, 0.2, 'temperature');
ok($b->{stream}, 'stream');
is_deeply($b->{messages}, [ { role => 'user', content => [
    { type => 'text', text => 'run ls -l /' } ] } ], 'the user message');
my ($t) = grep { $_->{name} eq 's1__exec_cmd' } @{ $b->{tools} };
is_deeply($t->{input_schema}, exec_tool()->{inputSchema},
          'tools: input_schema = inputSchema');
is($t->{description}, exec_tool()->{description}, '... description');
my @m = @{ $req[1]{body}{messages} };
is(scalar @m, 3, 'round 2: user, assistant, user');
is($m[1]{role}, 'assistant', 'the assistant turn');
my ($use) = grep { $_->{type} eq 'tool_use' } @{ $m[1]{content} };
is($use->{name}, 's1__exec_cmd', '... tool_use');
is_deeply($use->{input}, { command => 'ls -l /' }, '... its input (from '
          . 'input_json_delta pieces)');
is($m[2]{role}, 'user', 'tool results are a user turn');
is($m[2]{content}[0]{type}, 'tool_result', '... tool_result');
is($m[2]{content}[0]{tool_use_id}, $use->{id}, '... for that tool_use');
like($m[2]{content}[0]{content}, qr/\betc\n/, '... the output');
ok(!exists $m[2]{content}[0]{is_error}, '... no is_error');
--- no_error_log
[alert]
[crit]
[error]
ak-test-key-9876



=== TEST 3: stream=off: both providers' non-streamed replies; an SSE client still gets its events
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=openai model=m1 base_url=$TEST_NGINX_LLM_URL stream=off;
}
reverse_mcp_agent a2 {
    server s1 token=t;
    llm provider=anthropic model=m2 base_url=$TEST_NGINX_LLM_URL stream=off
        api_key=k2;
}
--- config
location /ws { reverse_mcp_connector a1; }
location /ws2 { reverse_mcp_connector a2; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
location /chat2 { reverse_mcp_chat a2; }
--- test_code
$main::LLM->reset;
my $s1 = exec_server(name => 's1');
my $s2 = exec_server(name => 's1', agent => 'a2', path => '/ws2');
my $r = chat(msg => { message => 'run echo hello-openai' }, servers => [$s1]);
is($r->{status}, 200, 'OpenAI, not streamed: 200');
is($r->{json}{answer}, "Tool output:\nhello-openai\n", '... the answer');
is($r->{json}{stop}, 'stop', '... finish_reason');
$r = chat(path => '/chat2', msg => { message => 'run echo hello-anthropic' },
          servers => [$s2], sse => 1);
is($r->{status}, 200, 'Anthropic, not streamed, SSE client: 200');
is($r->{json}{answer}, "Tool output:\nhello-anthropic\n", '... the answer');
is($r->{json}{stop}, 'end_turn', '... stop_reason');
is_deeply([ map { $_->{event} } @{ $r->{events} } ],
          [ qw(status status tool_result status answer) ],
          '... status events, no deltas');
my @req = $main::LLM->requests;
is(scalar @req, 4, 'four LLM requests');
ok(!$req[0]{body}{stream} && defined $req[0]{body}{stream}, 'stream: false');
is($req[0]{headers}{accept}, 'application/json', 'Accept: JSON');
ok(!exists $req[0]{headers}{authorization}, 'no key: no Authorization');
ok(!exists $req[0]{body}{temperature}, 'no temperature unless set');
is($req[2]{body}{max_tokens}, 4096, 'Anthropic: max_tokens 4096 by default');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 4: commands without the LLM: /tools (the seed's format, raw names), /servers, /hello, /help, /history, /bye, unknown commands; "/etc/..." goes to the model
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    server s2 token=t;
    server s3 token=t;
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
my $s1 = exec_server(name => 's1');
my $s2 = up(name => 's2', tools => [
    tool('fs.read', description => 'Read a file'),
    { name => 'blank', inputSchema => { type => 'object' } } ]);
my $r = chat(msg => { message => '/tools' });
is($r->{json}{answer}, "Available Tools:\n\n"
    . "- s1\n  - echo: tool echo\n"
    . "  - exec_cmd: Execute a shell command and return its output\n\n"
    . "- s2\n  - blank\n  - fs.read: Read a file\n\n", '/tools');
$r = chat(msg => { message => "  /TOOLS \n" });
like($r->{json}{answer}, qr/^Available Tools:/, '/TOOLS, blanks around');
$r = chat(msg => { message => '/servers' });
is($r->{json}{answer}, "Available Servers:\n\n"
    . "- s1\n  Transport: reverse MCP (WebSocket)\n"
    . "  (Remote MCP server connected to this instance)\n  Tools: 2\n"
    . "    - echo: tool echo\n"
    . "    - exec_cmd: Execute a shell command and return its output\n\n"
    . "- s2\n  Transport: reverse MCP (WebSocket)\n"
    . "  (Remote MCP server connected to this instance)\n  Tools: 2\n"
    . "    - blank\n    - fs.read: Read a file\n\n", '/servers');
$r = chat(msg => { message => '/hello' }, sse => 1);
is_deeply([ map { $_->{event} } @{ $r->{events} } ], ['answer'],
          '/hello over SSE: one answer event');
is($r->{json}{answer}, 'hello!', '/hello');
$r = chat(msg => { message => '/help' });
like($r->{json}{answer}, qr{^Commands: /tools}, '/help');
$r = chat(msg => { message => '/frobnicate' });
like($r->{json}{answer}, qr{^Unknown command: /frobnicate\. Commands:},
     'an unknown command');
is(scalar $main::LLM->requests, 0, 'no LLM request so far');

$r = chat(msg => { message => '/etc/hosts, what is it?', context_id => 'h1' });
like($r->{json}{answer}, qr{^You said: /etc/hosts}, 'a path goes to the model');
chat(msg => { message => 'second', context_id => 'h1' });
$r = chat(msg => { message => '/history', context_id => 'h1' });
is($r->{json}{answer}, "Conversation History:\n\n"
    . "--- User ---\n/etc/hosts, what is it?\n\n"
    . "--- Assistant ---\nYou said: /etc/hosts, what is it? (4 tools)\n\n"
    . "--- User ---\nsecond\n\n--- Assistant ---\nYou said: second (4 tools)"
    . "\n\n", '/history');
$r = chat(msg => { message => '/bye', context_id => 'h1' });
is($r->{json}{answer}, 'Bye! The conversation is closed.', '/bye');
$r = chat(msg => { message => '/history', context_id => 'h1' });
is($r->{json}{answer}, "No conversation history.\n", '... history gone');
$s1->disconnect;
$s2->disconnect;
wait_until(sub { !@{ status_json()->{agents}[0]{servers} } }, 5, 0.05);
$r = chat(msg => { message => '/servers' });
is($r->{json}{answer}, "No servers connected.\n", '/servers: none');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 5: tool results of every content type become text; isError and JSON-RPC errors are error results; names outside [A-Za-z0-9_-] are shortened for the model and mapped back
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s2 token=t;
    llm provider=anthropic model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
my $s = up(name => 's2', tools => [ tool('fs.read'), tool('broken'),
                                    tool('failing'), tool('structured') ],
    on_request => sub {
        my ($s, $m) = @_;
        return undef unless $m->{method} eq 'tools/call';
        my $n = $m->{params}{name};
        return { error => { code => -32000, message => 'disk on fire' } }
            if $n eq 'broken';
        return { content => [ { type => 'text', text => 'no such file' } ],
                 isError => \1 } if $n eq 'failing';
        return { content => [], structuredContent => { n => 42 } }
            if $n eq 'structured';
        return { content => [
            { type => 'text', text => 'line one' },
            { type => 'image', data => 'AAAAAAAA', mimeType => 'image/png' },
            { type => 'audio', data => 'AAAA', mimeType => 'audio/wav' },
            { type => 'resource', resource => { uri => 'file:///a.txt',
              mimeType => 'text/plain', text => 'file text' } },
            { type => 'resource', resource => { uri => 'file:///b.bin',
              blob => 'AAAAAAAAAAAA' } },
            { type => 'resource_link', uri => 'file:///c', name => 'c' },
            { type => 'text', text => 'line two' } ] };
    });
$main::LLM->script({ tool_calls => [
        { name => 's2__fs_read_e164554d4f', arguments => { path => '/a' } },
        { name => 's2__broken' }, { name => 's2__failing' },
        { name => 's2__structured' } ] },
    { text => 'all read' });
my $r = chat(msg => { message => 'read' }, servers => [$s]);
is($r->{status}, 200, 'status 200');
is($r->{json}{answer}, 'all read', 'the answer');
my @req = $main::LLM->requests;
my @names = sort map { $_->{name} } @{ $req[0]{body}{tools} };
is_deeply(\@names, [qw(s2__broken s2__failing s2__fs_read_e164554d4f
                         s2__structured)],
          '"fs.read" is "s2__fs_read_" + SHA-256 digits for the model');
my ($call) = grep { $_->{params}{name} eq 'fs.read' } $s->received('tools/call');
ok($call, '... and the server got a call of "fs.read"');
is_deeply($call->{params}{arguments}, { path => '/a' }, '... its arguments');
my $res = $req[1]{body}{messages}[2]{content};
is($res->[0]{content}, "line one\n[image: image/png, 6 bytes (base64) not "
    . "shown]\n[audio: audio/wav, 3 bytes (base64) not shown]\n"
    . "[resource file:///a.txt (text/plain)]\nfile text\n"
    . "[resource file:///b.bin: 9 bytes (base64) not shown]\n"
    . "[resource link: c <file:///c>]\nline two", 'every content type');
ok(!$res->[0]{is_error}, '... not an error');
is($res->[1]{content}, 'Error calling the tool: disk on fire',
   'a JSON-RPC error');
ok($res->[1]{is_error}, '... is_error');
is($res->[2]{content}, 'no such file', 'isError: the text');
ok($res->[2]{is_error}, '... is_error');
is($res->[3]{content}, '{"n":42}', 'structuredContent when no content');
my @tc = @{ $r->{json}{tool_calls} };
is_deeply([ map { $_->{is_error} ? 1 : 0 } @tc ], [0, 1, 1, 0],
          'tool_calls: is_error');
is($tc[0]{tool}, 'fs.read', '... the server\'s tool name');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 6: tools appear and vanish between rounds; a call to a server that left meanwhile and an unknown tool reach the model as error results
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    server s2 token=t;
    server s3 token=t;
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
my $held;
my $s1 = up(name => 's1', tools => [ tool('slow') ], on_request => sub {
    my ($s, $m) = @_;
    return undef unless $m->{method} eq 'tools/call';
    $held = $m->{id};
    return { noreply => 1 };
});
my $s2 = up(name => 's2', tools => [ tool('gone') ]);
# round 1: s1__slow (held), round 2: s2__gone (its server left) and a tool
# that never existed, round 3: the answer
$main::LLM->script({ tool_calls => [ { name => 's1__slow' } ] },
    { tool_calls => [ { name => 's2__gone' }, { name => 's9__nope' } ],
      delay => 1 },
    { text => 'recovered' });
my $h = chat_start(msg => { message => 'go' }, servers => [$s1, $s2]);
chat_poll($h, 10, sub { defined $held }) or die "no call on s1\n";
# while the call runs, s2 leaves and s3 comes
$s2->disconnect;
my $s3 = up(name => 's3', tools => [ tool('fresh') ]);
wait_until(sub { my @s = @{ status_json()->{agents}[0]{servers} };
                 !grep { $_->{name} eq 's2' } @s }, 5, 0.02)
    or die "s2 still registered\n";
$s1->respond($held, { content => [ { type => 'text', text => 'slow done' } ] });
push @{ $h->{servers} }, $s3;
my $r = chat_finish($h);
is($r->{status}, 200, 'status 200');
is($r->{json}{answer}, 'recovered', 'the model answered in the end');
my @req = $main::LLM->requests;
is(scalar @req, 3, 'three rounds');
my @t = map { [ sort map { $_->{function}{name} } @{ $_->{body}{tools} } ] }
        @req;
is_deeply($t[0], [qw(s1__slow s2__gone)], 'round 1: the tools of s1, s2');
is_deeply($t[1], [qw(s1__slow s3__fresh)],
          'round 2: s2 vanished, s3 appeared');
my @m = @{ $req[2]{body}{messages} };
is($m[-2]{role}, 'tool', 'round 3: tool results');
like($m[-2]{content}, qr/^Error: unknown tool "s2__gone": it is not available now$/,
     'the vanished tool: unknown now');
like($m[-1]{content}, qr/^Error: unknown tool "s9__nope"/, 'an unknown tool');
is_deeply([ map { $_->{is_error} ? 1 : 0 } @{ $r->{json}{tool_calls} } ],
          [0, 1, 1], 'tool_calls: the errors');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 7: a server that disconnects during its call, and one that left after the model saw its tools: error results, the loop goes on
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    server s2 token=t;
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
my $s1 = up(name => 's1', tools => [ tool('crash') ], on_request => sub {
    my ($s, $m) = @_;
    return undef unless $m->{method} eq 'tools/call';
    $s->disconnect(1);
    return { noreply => 1 };
});
my $s2 = up(name => 's2', tools => [ tool('late') ]);
$main::LLM->script(
    { tool_calls => [ { name => 's1__crash' }, { name => 's2__late' } ],
      delay => 1.5 },
    { text => 'done anyway' });
my $h = chat_start(msg => { message => 'go' }, servers => [$s1]);
# the model has the tools; s2 leaves before its reply comes
wait_until(sub { scalar $main::LLM->requests }, 5, 0.05);
$s2->disconnect;
wait_until(sub { my @s = @{ status_json()->{agents}[0]{servers} };
                 !grep { $_->{name} eq 's2' } @s }, 5, 0.02);
my $r = chat_finish($h);
is($r->{status}, 200, 'status 200');
is($r->{json}{answer}, 'done anyway', 'the answer');
my @m = @{ ($main::LLM->requests)[1]{body}{messages} };
like($m[-2]{content}, qr/^Error calling the tool: /,
     'the server that crashed during the call: an error result');
like($m[-1]{content},
     qr/^Error calling the tool: server "s2" is not connected \(its server is not connected\)$/,
     'the server that left: not connected');
--- no_error_log
[alert]
[crit]



=== TEST 8: max_rounds: the loop stops with a clear message
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL max_rounds=2;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
my $s = up(name => 's1');
my $call = { tool_calls => [ { name => 's1__echo',
                               arguments => { text => 'again' } } ] };
$main::LLM->script($call, $call, { %$call, text => 'Let me try again.' });
my $r = chat(msg => { message => 'loop', context_id => 'mr' },
             servers => [$s]);
is($r->{status}, 200, 'status 200');
is($r->{json}{answer}, "Let me try again.\n\nStopped: the model was still "
   . "calling tools after 2 rounds (max_rounds=2); no final answer.",
   'a clear message');
is($r->{json}{stop}, 'max_rounds', 'stop: max_rounds');
is($r->{json}{rounds}, 3, 'three LLM requests');
is(scalar @{ $r->{json}{tool_calls} }, 2, 'two tool rounds ran');
is(scalar $s->received('tools/call'), 2, '... on the server');
is(scalar $main::LLM->requests, 3, 'the LLM saw three requests');
$r = chat(msg => { message => '/history', context_id => 'mr' });
like($r->{json}{answer}, qr/Stopped: the model was still calling tools/,
     'the history has it');
--- error_log
stopped after 2 tool rounds (max_rounds)
--- no_error_log
[alert]
[crit]
[error]



=== TEST 9: history in the shared zone: another worker continues the conversation; agents do not see each other's; a busy conversation answers 409
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_chat_zone chat:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
reverse_mcp_agent a2 {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
log_format chat '$pid $status';
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2 reuseport;
    access_log $TEST_NGINX_SERVROOT/logs/chat.log chat;
    location /chat { reverse_mcp_chat a1; }
    location /chat2 { reverse_mcp_chat a2; }
}
--- config
location = /status { reverse_mcp_status; }
--- test_code
$main::LLM->reset;
my (%pids, $n);
for $n (1 .. 24) {
    my $r = chat(port => $ServerPort2,
                 msg => { message => "message $n", context_id => 'ctx-x' });
    die "message $n: $r->{status} $r->{body}\n" unless $r->{status} == 200;
    wait_until(sub { (() = slurp_file("$ServRoot/logs/chat.log") =~ /\n/g)
                     >= $n }, 3, 0.02);
    %pids = map { (split)[0] => 1 }
            split /\n/, slurp_file("$ServRoot/logs/chat.log");
    last if keys %pids > 1 && $n >= 3;
}
my @req = $main::LLM->requests;
my $last = $req[-1]{body}{messages};
my $count = @req;
is(scalar keys %pids, 2, "both workers answered ($count messages)");
is(scalar @$last, 2 * $count - 1, 'the last request has every turn');
is_deeply([ map { $_->{content} } grep { $_->{role} eq 'user' } @$last ],
          [ map { "message $_" } 1 .. $count ], '... the user messages');
is($last->[1]{role}, 'assistant', '... and the answers');
is($last->[1]{content}, 'You said: message 1 (0 tools)', '... as given');

# the same context id in another agent: nothing of a1's
my $r = chat(port => $ServerPort2, path => '/chat2',
             msg => { message => 'hello', context_id => 'ctx-x' });
is($r->{status}, 200, 'a2: 200');
is_deeply(($main::LLM->requests)[-1]{body}{messages},
          [ { role => 'user', content => 'hello' } ],
          'a2 does not see a1\'s conversation');

# one message at a time per conversation
$main::LLM->script({ text => 'slow', delay => 1.5 });
my $h = chat_start(port => $ServerPort2,
                   msg => { message => 'first', context_id => 'busy' });
wait_until(sub { $main::LLM->pending == 0 }, 5, 0.02);
$r = chat(port => $ServerPort2,
          msg => { message => 'second', context_id => 'busy' });
is($r->{status}, 409, 'the second message while the first runs: 409');
is($r->{json}{error}{type}, 'busy', '... busy');
like($r->{json}{error}{message}, qr/conversation "busy" is answering/,
     '... says so');
$r = chat_finish($h);
is($r->{json}{answer}, 'slow', 'the first one answers');
$r = chat(port => $ServerPort2,
          msg => { message => 'third', context_id => 'busy' });
is($r->{status}, 200, 'then the next one runs');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 10: history limits: max_history keeps the latest turns, idle entries expire
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_chat_zone chat:64k idle=2s max_history=1k;
reverse_mcp_agent a1 {
    llm provider=anthropic model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
for my $n (1 .. 8) {
    my $r = chat(msg => { message => "m$n " . ('x' x 100),
                          context_id => 'long' });
    die "$n: $r->{status}\n" unless $r->{status} == 200;
}
my $m = ($main::LLM->requests)[-1]{body}{messages};
ok(@$m < 15, 'old turns were dropped (' . scalar(@$m) . ' messages)');
is($m->[0]{role}, 'user', '... the history starts with a user turn');
like($m->[-1]{content}[0]{text}, qr/^m8 /, '... and ends with this one');
my $hist = chat(msg => { message => '/history', context_id => 'long' });
ok(length($hist->{json}{answer}) < 1200, 'the stored history fits 1k');
like($hist->{json}{answer}, qr/m8 x+\n\n--- Assistant ---/, '... the latest');
unlike($hist->{json}{answer}, qr/\bm1 /, '... not the first');
sleep 3;
$hist = chat(msg => { message => '/history', context_id => 'long' });
is($hist->{json}{answer}, "No conversation history.\n",
   'idle for longer than idle=2s: gone');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 11: one worker keeps serving while the LLM takes 5 s (libcurl on nginx's event loop)
--- workers: 1
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL timeout=20s;
}
--- config
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
$main::LLM->script({ text => 'finally', delay => 5 });
my $h = chat_start(msg => { message => 'take your time' });
wait_until(sub { $main::LLM->pending == 0 }, 5, 0.02)
    or die "the LLM request did not arrive\n";
my ($worst, $n) = (0, 0);
my $t0 = Time::HiRes::time();
while (Time::HiRes::time() - $t0 < 4) {
    my $t = Time::HiRes::time();
    my $s = http_get('/status');
    my $dt = Time::HiRes::time() - $t;
    die "status: $s->{status}\n" unless $s->{status} == 200;
    $worst = $dt if $dt > $worst;
    $n++;
    Time::HiRes::sleep(0.2);
}
cmp_ok($worst, '<', 0.1 * timeout_scale(),
       sprintf('%d status requests during the LLM wait, the slowest in '
               . '%.1f ms', $n, $worst * 1000));
my $r = chat_finish($h, 15);
is($r->{status}, 200, 'the chat answers');
is($r->{json}{answer}, 'finally', '... the answer');
cmp_ok($r->{time}, '>=', 4.9, sprintf('... after %.1f s', $r->{time}));
--- no_error_log
[alert]
[crit]
[error]



=== TEST 12: a client that goes away cancels the LLM request; the conversation is free again, the worker healthy
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
$main::LLM->script({ text => 'too late', delay => 3 });
my $h = chat_start(msg => { message => 'hi', context_id => 'gone' }, sse => 1);
chat_poll($h, 5, sub { $_[0] =~ /thinking/ }) or die "no status event\n";
wait_until(sub { $main::LLM->pending == 0 }, 5, 0.02)
    or die "the LLM request did not arrive\n";
close $h->{sock};
wait_until(sub { error_log_since_start() =~ /cancelled: the client went away/ },
           5, 0.05);
my $r = chat(msg => { message => 'again', context_id => 'gone' });
is($r->{status}, 200, 'the same conversation right away: 200');
is($r->{json}{answer}, 'You said: again (0 tools)', '... answered');
$r = chat(msg => { message => '/history', context_id => 'gone' });
unlike($r->{json}{answer}, qr/too late/, 'the cancelled turn is not kept');
--- error_log
chat of context "gone" cancelled: the client went away
--- no_error_log
[alert]
[crit]



=== TEST 13: requests the chat API refuses
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; client_max_body_size 1k; }
--- test_code
$main::LLM->reset;
my $r = chat(method => 'GET');
is($r->{status}, 405, 'GET: 405');
is($r->{headers}{allow}, 'POST', '... Allow: POST');
is($r->{json}{error}{type}, 'bad_request', '... a JSON error');
$r = chat(raw => '{"message":', content_type => 'application/json');
is($r->{status}, 400, 'bad JSON: 400');
like($r->{json}{error}{message}, qr/^the body is not JSON/, '... says so');
$r = chat(msg => { text => 'hi' });
is($r->{status}, 400, 'no message: 400');
like($r->{json}{error}{message}, qr/"message" \(a non-empty string\)/,
     '... says so');
$r = chat(msg => { message => '' });
is($r->{status}, 400, 'an empty message: 400');
$r = chat(msg => { message => 'hi', context_id => 'a b' });
is($r->{status}, 400, 'a bad context id: 400');
$r = chat(msg => { message => 'hi', context_id => 5 });
is($r->{status}, 400, 'a number as context id: 400');
$r = chat(msg => { message => 'hi' }, content_type => 'text/plain');
is($r->{status}, 415, 'text/plain: 415');
$r = chat(msg => { message => 'x' x 2000 });
is($r->{status}, 413, 'client_max_body_size: 413');
$r = chat(msg => { message => 'hi', context_id => 'ok-1' },
          content_type => 'application/json; charset=utf-8');
is($r->{status}, 200, 'a charset is fine');
is(scalar $main::LLM->requests, 1, 'one LLM request in all');
--- no_error_log
[alert]
[crit]



=== TEST 14: API keys from a file and from the environment ("env" directive); a missing variable is a clear error; keys never reach the log
--- user_files
>>> ../conf/llm.key
sk-from-file-4321

--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL
        api_key_file=llm.key;
}
reverse_mcp_agent a2 {
    llm provider=anthropic model=m base_url=$TEST_NGINX_LLM_URL
        api_key_env=RMCP_TEST_LLM_KEY;
}
reverse_mcp_agent a3 {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL
        api_key_env=RMCP_TEST_UNSET_KEY;
}
--- config
location = /status { reverse_mcp_status; }
location /chat1 { reverse_mcp_chat a1; }
location /chat2 { reverse_mcp_chat a2; }
location /chat3 { reverse_mcp_chat a3; }
--- test_code
$main::LLM->reset;
my $r = chat(path => '/chat1', msg => { message => 'hi' });
is($r->{status}, 200, 'api_key_file: 200');
$r = chat(path => '/chat2', msg => { message => 'hi' });
is($r->{status}, 200, 'api_key_env: 200');
my @req = $main::LLM->requests;
is($req[0]{headers}{authorization}, 'Bearer sk-from-file-4321',
   'the key from the file (trailing newline dropped)');
is($req[1]{headers}{'x-api-key'}, 'sk-from-env-5678', 'the key from env');
$r = chat(path => '/chat3', msg => { message => 'hi' });
is($r->{status}, 500, 'a variable that is not set: 500');
is($r->{json}{error}{type}, 'llm_config', '... llm_config');
like($r->{json}{error}{message},
     qr/environment variable RMCP_TEST_UNSET_KEY is not set for nginx workers \(add "env RMCP_TEST_UNSET_KEY;"\)/,
     '... names the variable and the fix');
is(scalar $main::LLM->requests, 2, '... without calling the LLM');
--- error_log
the environment variable RMCP_TEST_UNSET_KEY of "llm" api_key_env is not set in the worker
--- no_error_log
[alert]
[crit]
sk-from-file-4321
sk-from-env-5678



=== TEST 15: a reload while the LLM answers: the old worker finishes the message, the new ones take the next
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
$main::LLM->script({ text => 'answered across a reload', delay => 2 });
my $h = chat_start(msg => { message => 'slow', context_id => 'rl' });
wait_until(sub { $main::LLM->pending == 0 }, 5, 0.02)
    or die "the LLM request did not arrive\n";
my @old = nginx_worker_pids();
ok(nginx_reload(), 'reloaded');
my $r = chat_finish($h, 10);
is($r->{status}, 200, 'the message in flight is answered');
is($r->{json}{answer}, 'answered across a reload', '... in full');
$r = chat(msg => { message => 'after', context_id => 'rl' });
is($r->{status}, 200, 'the next message: 200');
is(($main::LLM->requests)[-1]{body}{messages}[1]{content},
   'answered across a reload', '... the history survived the reload');
wait_until(sub { my %o = map { $_ => 1 } @old;
                 !grep { kill 0, $_ } keys %o }, 10, 0.1);
ok(!(grep { kill 0, $_ } @old), 'the old workers exited');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 16: a worker killed while a message runs: the conversation is not left busy
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
--- test_code
$main::LLM->reset;
$main::LLM->script({ text => 'never seen', delay => 3 });
my $h = chat_start(msg => { message => 'first', context_id => 'kill' });
wait_until(sub { $main::LLM->pending == 0 }, 5, 0.02)
    or die "the LLM request did not arrive\n";
my @old = nginx_worker_pids();
for my $pid (@old) {
    expect_worker_kill($pid);
    kill 'KILL', $pid;
}
my $r = chat_finish($h, 5);
isnt($r->{status}, 200, 'the message in flight is lost with its worker');
wait_until(sub { my @n = nginx_worker_pids();
                 @n == 2 && !grep { my $p = $_; grep { $_ == $p } @old } @n },
           10, 0.05) or die "no new workers\n";
$r = chat(msg => { message => 'second', context_id => 'kill' });
is($r->{status}, 200, 'the conversation answers at once (its holder died)');
is($r->{json}{answer}, 'You said: second (0 tools)', '... the answer');
--- no_error_log
[crit]
