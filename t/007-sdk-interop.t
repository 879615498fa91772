# Interop with software we did not write: reverse MCP servers built with the
# official MCP TypeScript SDK (@modelcontextprotocol/sdk, from npm, in
# node_modules: `make deps` / `make test` install it with npm ci), over our
# WebSocket client transport (tools/ws-client-transport.mjs, on the "ws"
# package).

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::MCP;
use POSIX ();
use Time::HiRes ();

master_on();
workers(2);

our @Supported = qw(2024-11-05 2025-03-26 2025-06-18 2025-11-25);

my @missing = grep { !-f "$NodeModules/$_/package.json" }
              qw(@modelcontextprotocol/sdk ws zod);
if (@missing) {
    # not a skip: these tests are the interop evidence
    fail("the MCP TypeScript SDK is not installed: missing @missing in "
         . "$NodeModules; run `make deps` (npm ci) or `make test`, which "
         . 'installs it');
    done_testing();
    exit 1;
}

run_tests();

sub tool_names { [ map { $_->{name} } @{ $_[0]{tools} || [] } ] }

__DATA__

=== TEST 1: the SDK demo server registers; SIGKILL removes it within ~1 s
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $log = "$servroot/logs/demo-s1.log";
my $pid = demo_server($log, name => 's1', token => 't1');
my $e = wait_entry('s1', $log) or die "the demo server did not register\n";

is_deeply(tool_names($e), [qw(add echo system_info time)],
          'tools add, echo, system_info, time');
is($e->{tools_count}, 4, 'tools_count 4');
is($e->{tools_rejected}, 0, 'no tool rejected');
ok((grep { $_ eq $e->{protocol_version} } @main::Supported),
   "protocol_version $e->{protocol_version} is a supported one");
is($e->{protocol_version}, '2025-06-18',
   'the SDK accepted the version the gateway asked for');
is_deeply($e->{server_info}, { name => 'reverse-mcp-demo', version => '0.1.0' },
          'server_info from the SDK');
ok($e->{capabilities}{tools}{listChanged},
   'capabilities: tools.listChanged (McpServer default)');
my %t = map { $_->{name} => $_ } @{ $e->{tools} };
is($t{add}{description}, 'Add two numbers', 'add: description');
is($t{add}{inputSchema}{type}, 'object', 'add: inputSchema type object');
is_deeply([ sort keys %{ $t{add}{inputSchema}{properties} } ], [qw(a b)],
          'add: inputSchema properties a, b (from zod)');
is_deeply($t{echo}{inputSchema}{required}, ['text'], 'echo: required text');
like(slurp($log), qr/connected to ws:\/\/127\.0\.0\.1:\d+\/ws as 's1'/,
     'the demo server says it is connected');

# SIGKILL: the kernel closes the socket, no close frame
my $t0 = Time::HiRes::time();
kill 'KILL', $pid;
ok(wait_until(sub { !entry('s1') }, 1.5, 0.02),
   's1 unregistered within ~1 s of SIGKILL');
note(sprintf 'gone after %.2f s', Time::HiRes::time() - $t0);
node_gone($pid) or wait_until(sub { node_gone($pid) }, 2);
my $j = status_json();
is($j->{counters}{connections}, 0, 'connections counter back to 0');
is($j->{counters}{registrations}, 1, 'one registration');
is($j->{counters}{deregistrations}, 1, 'one deregistration');
--- error_log eval
[
    qr/server "s1" of agent "a1" registered with 4 tool\(s\), protocol 2025-\d\d-\d\d \(connection 1\)/,
    qr/server "s1" of agent "a1" closed the connection without a close frame/,
    qr/server "s1" of agent "a1" unregistered \(connection 1\)/,
]
--- no_error_log
[alert]
[crit]
[error]
token=t1



=== TEST 2: --subprotocol mcp and --no-newline still register
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
# the "ws" package fails the connection unless the server echoes the
# offered subprotocol, so registering proves "mcp" came back
my $log1 = "$servroot/logs/demo-s1.log";
my $log2 = "$servroot/logs/demo-s2.log";
my $p1 = demo_server($log1, name => 's1', token => 't1',
              args => [ '--subprotocol', 'mcp' ]);
my $p2 = demo_server($log2, name => 's2', token => 't2',
                     args => ['--no-newline']);
my $e1 = wait_entry('s1', $log1);
my $e2 = wait_entry('s2', $log2);
ok($e1, 's1 (subprotocol mcp) registered');
ok($e2, 's2 (no newline after each message) registered');
is_deeply(tool_names($e1), [qw(add echo system_info time)], 's1 tools');
is_deeply(tool_names($e2), [qw(add echo system_info time)], 's2 tools');
unlike(slurp($log1), qr/connect failed/, 's1: no connect error');

# SIGTERM: node exits; its socket closes
node_kill($p1, 'TERM');
node_kill($p2, 'KILL');
ok(wait_until(sub { my $j = status_json();
                    !entry('s1', $j) && !entry('s2', $j) }, 2),
   'both unregistered after their processes ended');
--- error_log eval
[
    qr/server "s1" of agent "a1" registered with 4 tool\(s\)/,
    qr/server "s2" of agent "a1" registered with 4 tool\(s\)/,
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 3: an SDK server adding and removing a tool after registration
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $log = "$servroot/logs/list-changed.log";
my $pid = node_start($log, 't/interop/sdk-list-changed.mjs',
    '--url', "ws://127.0.0.1:$port/ws", '--name', 's1', '--token', 't1');
my $e0 = wait_entry('s1', $log) or die "the SDK server did not register\n";
is_deeply(tool_names($e0), ['hello'], 'registered with the tool hello');
is_deeply($e0->{server_info}, { name => 'sdk-list-changed', version => '1.0.0' },
          'server_info');
my $j0 = status_json();
my $gen0 = (grep { $_->{name} eq 'a1' } @{ $j0->{agents} })[0]{generation};

# registerTool on the connected server: the SDK sends list_changed
kill 'USR1', $pid;
my $e;
ok(wait_until(sub { $e = entry('s1'); @{ tool_names($e) } == 2 }, 3, 0.02),
   'the new tool appears in the status page')
    or diag(slurp($log));
is_deeply(tool_names($e), [qw(hello late_tool)], 'tools hello, late_tool');
my ($late) = grep { $_->{name} eq 'late_tool' } @{ $e->{tools} };
is($late->{description}, 'Registered after the gateway listed the tools',
   'late_tool description');
is_deeply([ keys %{ $late->{inputSchema}{properties} } ], ['n'],
          'late_tool inputSchema');
is($e->{connection_id}, $e0->{connection_id}, 'same connection');
is($e->{relists}, 1, 'entry relists 1');
my $j = status_json();
is($j->{counters}{relists}, 1, 'relists counter 1');
cmp_ok((grep { $_->{name} eq 'a1' } @{ $j->{agents} })[0]{generation}, '>',
       $gen0, 'the agent generation changed');

# tool.remove(): list_changed again
kill 'USR2', $pid;
ok(wait_until(sub { $e = entry('s1'); @{ tool_names($e) } == 1 }, 3, 0.02),
   'the removed tool disappears') or diag(slurp($log));
is_deeply(tool_names($e), ['hello'], 'back to hello only');
is($e->{relists}, 2, 'entry relists 2');

# a clean close from the SDK side
kill 'TERM', $pid;
ok(wait_until(sub { node_gone($pid) }, 5), 'the SDK server exited');
like(slurp($log), qr/disconnected: 1000 /, 'the SDK side saw the close 1000');
ok(wait_until(sub { !entry('s1') }, 2), 's1 unregistered');
--- error_log eval
[
    qr/server "s1" of agent "a1" registered with 1 tool\(s\)/,
    qr/server "s1" of agent "a1" now has 2 tool\(s\)/,
    qr/server "s1" of agent "a1" now has 1 tool\(s\)/,
    qr/server "s1" of agent "a1" closed the WebSocket with 1000 "bye"/,
]
--- no_error_log
[alert]
[crit]
[error]
