# Interop with the MCP Inspector's command-line client
# (@modelcontextprotocol/inspector-cli 1.0.3 from npm, on the official
# TypeScript SDK's Client and StreamableHTTPClientTransport), the tool
# people reach for first to poke at an MCP server: against the aggregate
# /mcp and the transparent /mcp/<server> of two SDK demo reverse servers
# (tools/demo-reverse-server.mjs, McpServer over our WebSocket client
# transport), with two workers, with and without the endpoint's bearer
# token.  Each check runs the CLI as a child and reads its JSON output.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::MCP;
use File::Basename ();

master_on();
workers(2);

our $CliRuns = 0;
our $Cli = "$NodeModules/\@modelcontextprotocol/inspector-cli/build/index.js";

if (!-f $Cli) {
    # not a skip: this test is interop evidence
    fail("the MCP Inspector CLI is not installed: missing $Cli; run "
         . '`make deps` (npm ci) or `make test`, which installs it');
    done_testing();
    exit 1;
}

run_tests();

# runs the CLI against $path with @args; returns (exit status, output,
# decoded JSON output or undef)
sub cli {
    my ($path, @args) = @_;
    my $log = "$ServRoot/logs/cli." . ++$CliRuns . '.log';
    # from its own directory: the CLI looks for its package.json (its
    # client name and version) relative to the working directory
    my $pid = node_start($log, { cwd => File::Basename::dirname($Cli) },
                         $Cli, "http://127.0.0.1:$ServerPort$path",
                         '--transport', 'http', @args);
    my $st = node_wait($pid, 30);
    die "the inspector CLI did not exit within 30 s\n" unless defined $st;
    my $out = slurp($log);
    my ($json) = $out =~ /^(\{.*\})\s*$/ms;
    return ($st, $out, defined $json ? eval { dec($json) } : undef);
}

# both demo servers registered, or die
sub demos {
    my @pids;
    for my $n (qw(s1 s2)) {
        my $log = "$ServRoot/logs/demo-$n.log";
        push @pids, demo_server($log, name => $n, token => "t$n");
        wait_entry($n, $log) or die "demo server $n did not register\n";
    }
    return @pids;
}

sub tool_names { [ sort map { $_->{name} } @{ $_[0]{tools} || [] } ] }

__DATA__

=== TEST 1: aggregate /mcp: tools/list of both servers, tools/call with structured results, from either worker
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=ts1; server s2 token=ts2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my @demos = demos();

my ($st, $out, $j) = cli('/mcp', '--method', 'tools/list');
is($st, 0, 'tools/list: the CLI exits 0') or diag($out);
is_deeply(tool_names($j),
          [qw(s1__add s1__echo s1__system_info s1__time
              s2__add s2__echo s2__system_info s2__time)],
          'tools/list: the tools of s1 and s2 as <server>__<tool>');
my ($add) = grep { $_->{name} eq 's2__add' } @{ $j->{tools} || [] };
is($add->{description}, 'Add two numbers', 's2__add: description relayed');
is_deeply([ sort keys %{ $add->{inputSchema}{properties} || {} } ],
          [qw(a b)], 's2__add: input schema relayed');

# several calls: with two workers some land on the worker that does not
# own the socket (the mailbox path) and must give the same answer
for my $i (1 .. 4) {
    ($st, $out, $j) = cli('/mcp', '--method', 'tools/call',
                          '--tool-name', 's2__add',
                          '--tool-arg', "a=$i", 'b=40');
    is($st, 0, "s2__add #$i: exit 0") or diag($out);
    is_deeply($j->{structuredContent}, { sum => $i + 40 },
              "s2__add #$i: structuredContent from the server");
    is($j->{content}[0]{text}, $i + 40, "s2__add #$i: text content");
}

($st, $out, $j) = cli('/mcp', '--method', 'tools/call',
                      '--tool-name', 's1__echo', '--tool-arg', 'text=hi there');
is($st, 0, 's1__echo: exit 0') or diag($out);
is_deeply($j->{content}, [ { type => 'text', text => 'hi there' } ],
          's1__echo: the server\'s content unchanged');

# SIGTERM: the demo servers close their sockets, nginx can stop
node_kill($_, 'TERM') for @demos;
--- no_error_log
[alert]
[crit]
[error]



=== TEST 2: transparent /mcp/<server>: the server's own tool names
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=ts1; server s2 token=ts2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my @demos = demos();

my ($st, $out, $j) = cli('/mcp/s1', '--method', 'tools/list');
is($st, 0, 'tools/list on /mcp/s1: exit 0') or diag($out);
is_deeply(tool_names($j), [qw(add echo system_info time)],
          '/mcp/s1: tool names unchanged');

($st, $out, $j) = cli('/mcp/s1', '--method', 'tools/call',
                      '--tool-name', 'add', '--tool-arg', 'a=2', 'b=3');
is($st, 0, 'add on /mcp/s1: exit 0') or diag($out);
is_deeply($j->{structuredContent}, { sum => 5 }, 'add: 2 + 3 = 5');

# SIGTERM: the demo servers close their sockets, nginx can stop
node_kill($_, 'TERM') for @demos;
--- no_error_log
[alert]
[crit]
[error]



=== TEST 3: errors the CLI shows: a tool that does not exist, a server that is not connected, a server that is not configured
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=ts1; server s2 token=ts2;
                       server s3 token=ts3; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my @demos = demos();

my ($st, $out) = cli('/mcp', '--method', 'tools/call',
                     '--tool-name', 's1__nope');
isnt($st, 0, 'unknown tool: the CLI fails');
like($out, qr/s1__nope/, 'unknown tool: the error names it');

($st, $out) = cli('/mcp', '--method', 'tools/call',
                  '--tool-name', 's3__echo', '--tool-arg', 'text=x');
isnt($st, 0, 'server s3 not connected: the CLI fails');
like($out, qr/s3/, 'not connected: the error names the server');

($st, $out) = cli('/mcp/s9', '--method', 'tools/list');
isnt($st, 0, '/mcp/s9 (no such server): the CLI fails');
like($out, qr{Unknown MCP server: this agent has no server at \\"/mcp/s9\\"},
     '/mcp/s9: the failure says why');

# nothing broke: the next call works
my $j;
($st, $out, $j) = cli('/mcp', '--method', 'tools/call',
                      '--tool-name', 's1__echo', '--tool-arg', 'text=ok');
is($st, 0, 'a good call afterwards: exit 0') or diag($out);
is($j->{content}[0]{text}, 'ok', 'a good call afterwards: its result');

# SIGTERM: the demo servers close their sockets, nginx can stop
node_kill($_, 'TERM') for @demos;



=== TEST 4: reverse_mcp_endpoint_token: the CLI without the bearer token gets 401, with --header it works
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=ts1; server s2 token=ts2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp {
    reverse_mcp_endpoint a1;
    reverse_mcp_endpoint_token token=agent-secret;
}
--- test_code
my @demos = demos();

my ($st, $out) = cli('/mcp', '--method', 'tools/list');
isnt($st, 0, 'no token: the CLI fails');
like($out, qr/401|Unauthorized/i, 'no token: it says 401');

my $j;
($st, $out, $j) = cli('/mcp', '--method', 'tools/list',
                      '--header', 'Authorization: Bearer agent-secret');
is($st, 0, 'with the token: exit 0') or diag($out);
is(scalar @{ $j->{tools} || [] }, 8, 'with the token: 8 tools');

($st, $out) = cli('/mcp', '--method', 'tools/list',
                  '--header', 'Authorization: Bearer wrong');
isnt($st, 0, 'a wrong token: the CLI fails');

# SIGTERM: the demo servers close their sockets, nginx can stop
node_kill($_, 'TERM') for @demos;
--- no_error_log
[alert]
[crit]
agent-secret
