# reverse-mcp-bridge (bridge/, built by `make bridge` into
# build/reverse-mcp-bridge): stdio MCP servers served to the gateway over an
# outgoing WebSocket.  The servers are the official
# @modelcontextprotocol/server-everything and our SDK demo
# (tools/demo-stdio-server.mjs), both from node_modules (`make deps` runs
# npm ci), plus small hand-written children written by the blocks (a
# crashing one, one that writes garbage, one that floods).

use lib 't/lib';
use Test::Nginx::Socket;
use IO::Socket::INET ();
use IO::Select ();
use POSIX ();
use Time::HiRes ();

master_on();
workers(2);

our $Node = $ENV{TEST_NGINX_NODE}
            // (-x '/usr/bin/node' ? '/usr/bin/node' : 'node');
our $NodeModules = $ENV{TEST_NGINX_NODE_MODULES} // "$RepoRoot/node_modules";
our $Bridge = $ENV{TEST_NGINX_BRIDGE} // "$RepoRoot/build/reverse-mcp-bridge";
our $Everything = "$NodeModules/\@modelcontextprotocol/server-everything"
                  . '/dist/index.js';
our %Children;          # pid => what
our @Stopped;           # SIGSTOPped nginx workers to SIGCONT at the end
our $MyNginx;           # a gateway this file restarted itself

my @missing = grep { !-f "$NodeModules/$_/package.json" }
              qw(@modelcontextprotocol/sdk @modelcontextprotocol/server-everything zod);
if (!-x $Bridge || @missing) {
    # not a skip: these tests are the evidence the bridge works
    fail(!-x $Bridge
         ? "$Bridge is not built: run `make bridge` (make test does)"
         : "missing @missing in $NodeModules: run `make deps` (npm ci)");
    done_testing();
    exit 1;
}

run_tests();

END {
    local $?;
    kill 'CONT', @Stopped if @Stopped;
    gateway_stop_mine();
    for my $pid (keys %Children) {
        kill 'KILL', $pid;
        kill 'KILL', -$pid if $Children{$pid} eq 'proxy';
        waitpid $pid, 0;
    }
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return scalar <$fh>;
}

sub write_file {
    my ($file, $data, $mode) = @_;
    open my $fh, '>', $file or die "$file: $!\n";
    print $fh $data;
    close $fh or die "$file: $!\n";
    chmod $mode, $file if $mode;
    return $file;
}

# bridge_start($log, \%env, @args): the bridge from the repository root,
# stdout and stderr to $log.  Proxy variables of the caller's environment
# are removed unless %env sets them.
sub bridge_start {
    my ($log, $env, @args) = @_;
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        chdir $RepoRoot or POSIX::_exit(126);
        delete @ENV{qw(http_proxy HTTP_PROXY https_proxy HTTPS_PROXY
                       all_proxy ALL_PROXY no_proxy NO_PROXY
                       REVERSE_MCP_TOKEN)};
        %ENV = (%ENV, %{ $env || {} });
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        no warnings 'exec';
        exec { $Bridge } $Bridge, @args;
        print STDERR "exec $Bridge: $!\n";
        POSIX::_exit(127);
    }
    $Children{$pid} = 'bridge';
    return $pid;
}

# the wait status once $pid exited within $timeout s, else undef
sub bridge_wait {
    my ($pid, $timeout) = @_;
    my $st;
    wait_until(sub {
        return 0 unless waitpid($pid, POSIX::WNOHANG()) == $pid;
        $st = $?;
        delete $Children{$pid};
        1;
    }, $timeout // 10, 0.02);
    return $st;
}

# SIGTERM, then the exit status (undef: still running after $timeout s)
sub bridge_stop {
    my ($pid, $timeout) = @_;
    kill 'TERM', $pid;
    my $st = bridge_wait($pid, $timeout // 10);
    if (!defined $st) {
        kill 'KILL', $pid;
        bridge_wait($pid, 2);
    }
    return $st;
}

sub exit_code { defined $_[0] && POSIX::WIFEXITED($_[0]) ? $_[0] >> 8 : -1 }

sub agent {
    my ($j) = @_;
    $j //= status_json();
    my ($a) = grep { $_->{name} eq 'a1' } @{ $j->{agents} };
    return $a;
}

sub entry {
    my ($name, $j) = @_;
    my $a = agent($j) or return undef;
    my ($e) = grep { $_->{name} eq $name } @{ $a->{servers} };
    return $e;
}

sub wait_entry {
    my ($name, $log, $timeout, $cond) = @_;
    my $e;
    return $e if wait_until(sub {
        $e = entry($name);
        $e && (!$cond || $cond->($e));
    }, $timeout // 15, 0.05);
    diag("$name did not register; the bridge log:\n" . slurp($log));
    return undef;
}

sub tool_names { [ map { $_->{name} } @{ $_[0]{tools} || [] } ] }

sub alive { my ($pid) = @_; return kill(0, $pid) ? 1 : 0 }

# how many times $re matches in $file
sub count_in {
    my ($file, $re) = @_;
    my $n = () = slurp($file) =~ /$re/g;
    return $n;
}

# the pids of the children the bridge started, from its log
sub child_pids { [ slurp($_[0]) =~ /started child (\d+)/g ] }

# --- restarting the harness's gateway ourselves -------------------------

sub listening {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 1);
    return $s ? 1 : 0;
}

# fast stop (TERM) of whichever gateway runs; waits until it is gone
sub gateway_stop {
    my $pid = $MyNginx // nginx_master_pid();
    kill 'TERM', $pid;
    my $gone = wait_until(sub {
        waitpid($pid, POSIX::WNOHANG()) == $pid || !kill 0, $pid
    }, 10, 0.02);
    undef $MyNginx if $MyNginx && $gone;
    # workers are gone once the port is free
    wait_until(sub { !listening($ServerPort) }, 5, 0.02);
    return $gone;
}

# the same configuration again, in the same server root and error log
sub gateway_start {
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        POSIX::setpgid(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$ServRoot/logs/stderr.log";
        open STDERR, '>&', \*STDOUT;
        no warnings 'exec';
        exec { $NginxBinary } $NginxBinary, '-p', "$ServRoot/", '-c',
             'conf/nginx.conf';
        POSIX::_exit(127);
    }
    $MyNginx = $pid;
    return wait_until(sub { listening($ServerPort) }, 5, 0.02);
}

sub gateway_stop_mine {
    return unless $MyNginx;
    kill 'QUIT', $MyNginx;
    unless (wait_until(sub { waitpid($MyNginx, POSIX::WNOHANG()) == $MyNginx },
                       5, 0.02))
    {
        kill 'KILL', -$MyNginx;
        waitpid $MyNginx, 0;
    }
    undef $MyNginx;
}

# --- an HTTP CONNECT proxy ------------------------------------------------

# proxy_start($log, %opt): opt auth => "user:pass" (else 407), deny => 1
# (403 to every CONNECT).  Logs "CONNECT host:port [auth]" lines.
sub proxy_start {
    my ($log, %o) = @_;
    my $port = free_port();
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $port, Listen => 16, ReuseAddr => 1)
        or die "proxy listen: $!\n";
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        POSIX::setpgid(0, 0);
        $SIG{CHLD} = 'IGNORE';
        while (1) {
            my $c = $srv->accept or next;
            my $k = fork;
            if (!defined $k || $k) { close $c; next; }
            close $srv;
            proxy_conn($c, $log, %o);
            POSIX::_exit(0);
        }
    }
    close $srv;
    $Children{$pid} = 'proxy';
    return ($port, $pid);
}

sub proxy_conn {
    my ($c, $log, %o) = @_;
    my $hdr = '';
    while ($hdr !~ /\r\n\r\n/) {
        sysread($c, my $b, 1) or return;
        $hdr .= $b;
        return if length $hdr > 16384;
    }
    my ($target) = $hdr =~ /^CONNECT (\S+) HTTP\/1\.1\r\n/;
    my ($auth) = $hdr =~ /^Proxy-Authorization: Basic (\S+)\r$/mi;
    open my $l, '>>', $log;
    print $l 'CONNECT ' . ($target // '-')
             . ($auth ? ' auth=' . MIME_decode($auth) : '') . "\n";
    close $l;
    my $no = sub { syswrite $c, "HTTP/1.1 $_[0]\r\nContent-Length: 0\r\n\r\n" };
    return $no->('400 Bad Request') unless $target
                                        && $target =~ /^(.+):(\d+)$/;
    my ($host, $port) = ($1, $2);
    return $no->('403 Forbidden') if $o{deny};
    if ($o{auth} && (!$auth || MIME_decode($auth) ne $o{auth})) {
        return syswrite $c, "HTTP/1.1 407 Proxy Authentication Required\r\n"
            . "Proxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0"
            . "\r\n\r\n";
    }
    my $up = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port)
        or return $no->('502 Bad Gateway');
    syswrite $c, "HTTP/1.1 200 Connection established\r\n\r\n";
    my $sel = IO::Select->new($c, $up);
    while (my @r = $sel->can_read(30)) {
        for my $s (@r) {
            my $n = sysread($s, my $buf, 65536);
            return unless $n;
            my $to = $s == $c ? $up : $c;
            my $off = 0;
            while ($off < $n) {
                my $w = syswrite($to, $buf, $n - $off, $off) or return;
                $off += $w;
            }
        }
    }
}

sub MIME_decode {
    my ($s) = @_;
    require MIME::Base64;
    return MIME::Base64::decode_base64($s);
}

# --- children written by the blocks ---------------------------------------

# answers initialize and tools/list by hand (one tool per name in @tools),
# and ping; %o: garbage => 1 (junk before and between the answers),
# exit_after_init => N (exit status N 100 ms after answering initialize),
# flood => [count, bytes] (notifications sent before anything else)
sub script_server {
    my ($file, %o) = @_;
    my $tools = join ',', map { "'$_'" } @{ $o{tools} || ['hello'] };
    my $garbage = $o{garbage} ? 1 : 0;
    my $exit = $o{exit_after_init} // -1;
    my ($fn, $fb) = @{ $o{flood} || [0, 0] };
    return write_file($file, <<"_JS_");
import readline from 'node:readline';
const out = (s) => process.stdout.write(s + '\\n');
const garbage = $garbage, exitAfterInit = $exit;
if (garbage) {
  out('this is not JSON');
  out('{"jsonrpc": "2.0", "method": "broken"');
  out('42');
  process.stdout.write(Buffer.from([0xff, 0xfe, 0x7b, 0x7d, 0x0a]));
  out('');
  out('[1, 2] trailing');
}
const pad = 'x'.repeat($fb);
for (let i = 0; i < $fn; i++) {
  out(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/flood',
                       params: { i, pad } }));
}
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (garbage) out('garbage between messages');
  if (m.method === 'initialize') {
    out(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: {
      protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} },
      serverInfo: { name: 'script-server', version: '1.0.0' } } }));
    if (exitAfterInit >= 0) setTimeout(() => process.exit(exitAfterInit), 100);
  } else if (m.method === 'tools/list') {
    out(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { tools:
      [$tools].map((name) => ({ name, description: 'tool ' + name,
                               inputSchema: { type: 'object' } })) } }));
  } else if (m.method === 'ping') {
    out(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: {} }));
  }
});
rl.on('close', () => process.exit(0));
console.error('script-server ' + process.pid + ' up');
_JS_
}

__DATA__

=== TEST 1: server-everything (official, from npm) behind the bridge; SIGTERM closes with 1000 and exits 0
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 { server everything token=ev-token; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $log = "$servroot/logs/bridge.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$port/ws",
    '--name', 'everything', '--token', 'ev-token',
    '--', $main::Node, $main::Everything, 'stdio');
my $e = wait_entry('everything', $log)
    or die "server-everything did not register\n";
is($e->{server_info}{name}, 'mcp-servers/everything',
   'server_info from server-everything');
my %t = map { $_ => 1 } @{ tool_names($e) };
ok($t{$_}, "tool $_ registered")
    for qw(echo get-sum get-tiny-image trigger-long-running-operation);
cmp_ok($e->{tools_count}, '>=', 8, "$e->{tools_count} tools");
is($e->{tools_rejected}, 0, 'no tool rejected');
is($e->{protocol_version}, '2025-06-18', 'protocol 2025-06-18');
my ($child) = @{ child_pids($log) };
ok($child && alive($child), "the child ($child) runs");

my $t0 = Time::HiRes::time();
my $st = bridge_stop($pid);
is(exit_code($st), 0, 'SIGTERM: exit status 0');
cmp_ok(Time::HiRes::time() - $t0, '<', 5, 'and within 5 s');
ok(!alive($child), 'the child is gone');
ok(wait_until(sub { !entry('everything') }, 3), 'unregistered');
my $l = slurp($log);
like($l, qr/connected to ws:\/\/127\.0\.0\.1:\d+\/ws as "everything"/,
     'bridge log: connected');
like($l, qr/\[child $child\] /, "the child's stderr is in the log, tagged");
unlike($l, qr/ev-token/, 'the token is not in the bridge log');
--- error_log eval
[
    qr/server "everything" of agent "a1" registered with \d+ tool\(s\)/,
    qr/server "everything" of agent "a1" closed the WebSocket with 1000 "reverse-mcp-bridge stopping"/,
]
--- no_error_log
[alert]
[crit]
[error]
ev-token



=== TEST 2: the demo stdio server: token from a file, header only; token from the environment (not passed on to the child)
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 { server demo token=demo-token; server envtok token=env-secret; }
--- config
location /ws {
    reverse_mcp_connector a1;
    reverse_mcp_query_token off;
}
location = /status { reverse_mcp_status; }
--- test_code
my $tf = write_file("$servroot/token", "demo-token\n", 0600);
my $log = "$servroot/logs/bridge-demo.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$port/ws",
    '--name', 'demo', '--token-file', $tf, '--query-token', 'off',
    '--', $main::Node, 'tools/demo-stdio-server.mjs');
my $e = wait_entry('demo', $log) or die "the demo did not register\n";
is_deeply(tool_names($e), [qw(add echo system_info time)],
          'tools add, echo, system_info, time');
is_deeply($e->{server_info},
          { name => 'reverse-mcp-demo-stdio', version => '0.1.0' },
          'server_info of the demo');
my %t = map { $_->{name} => $_ } @{ $e->{tools} };
is_deeply([ sort keys %{ $t{add}{inputSchema}{properties} } ], [qw(a b)],
          'add: properties a, b');

# the token from REVERSE_MCP_TOKEN; the child dumps its environment
my $envdump = "$servroot/child-env.txt";
my $sh = write_file("$servroot/envdump.sh",
    "#!/bin/sh\nenv > '$envdump'\nexec '$main::Node' tools/demo-stdio-server.mjs\n",
    0755);
my $log2 = "$servroot/logs/bridge-env.log";
my $pid2 = bridge_start($log2, { REVERSE_MCP_TOKEN => 'env-secret' },
    '--url', "ws://127.0.0.1:$port/ws", '--name', 'envtok',
    '--query-token', 'off', '--', $sh);
ok(wait_entry('envtok', $log2), 'the token from REVERSE_MCP_TOKEN works');
my $env = slurp($envdump);
like($env, qr/^PATH=/m, 'the child got an environment');
unlike($env, qr/REVERSE_MCP_TOKEN|env-secret/,
       'but not REVERSE_MCP_TOKEN');

is(exit_code(bridge_stop($pid)), 0, 'demo bridge: exit 0');
is(exit_code(bridge_stop($pid2)), 0, 'env bridge: exit 0');
unlike(slurp("$servroot/logs/access.log"), qr/token=/,
       'no query token was sent (--query-token off)');
--- error_log eval
[
    qr/server "demo" of agent "a1" registered with 4 tool\(s\)/,
    qr/server "envtok" of agent "a1" registered with 4 tool\(s\)/,
    qr/server "demo" of agent "a1" closed the WebSocket with 1000/,
]
--- no_error_log
[alert]
[crit]
[error]
refused



=== TEST 3: a wrong token (401) or an unknown name (403) ends the bridge at once, status 3, HTTP status in the message
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 { server demo token=demo-token; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
for my $case (['demo', 'wrong-token', 401, 'wrong token'],
              ['stranger', 'demo-token', 403,
               'server is not registered for this agent'])
{
    my ($name, $token, $code, $reason) = @$case;
    my $log = "$servroot/logs/bridge-$code.log";
    my $t0 = Time::HiRes::time();
    my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$port/ws",
        '--name', $name, '--token', $token, '--backoff-min', '100ms',
        '--', $main::Node, 'tools/demo-stdio-server.mjs');
    my $st = bridge_wait($pid, 10);
    my $dt = Time::HiRes::time() - $t0;
    is(exit_code($st), 3, "$code: exit status 3");
    cmp_ok($dt, '<', 5, sprintf "$code: exited at once (%.2f s)", $dt);
    my $l = slurp($log);
    like($l, qr/\[error\] the gateway 127\.0\.0\.1:\d+ refused server "$name": HTTP $code \w+[^"]*: "\Q$reason\E"/,
         "$code: the message has the status and the gateway's reason");
    is(scalar(() = $l =~ /refused server/g), 1, "$code: not retried");
    my ($child) = @{ child_pids($log) };
    ok($child && !alive($child), "$code: the child was stopped");
    unlike($l, qr/wrong-token/, "$code: the token is not logged");
}
is(status_json()->{counters}{handshakes_refused}, 2, 'two refusals');
--- error_log eval
[
    qr/refused server "demo": wrong token \(401\)/,
    qr/refused server "stranger": server is not registered for this agent \(403\)/,
]
--- no_error_log
[alert]
[crit]



=== TEST 4: gateway restart (stop, start): the bridge reconnects with a fresh child and the tools come back within the backoff bound
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 { server demo token=demo-token; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $log = "$servroot/logs/bridge.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$port/ws",
    '--name', 'demo', '--token', 'demo-token',
    '--backoff-min', '100ms', '--backoff-max', '1s',
    '--', $main::Node, 'tools/demo-stdio-server.mjs');
my $e0 = wait_entry('demo', $log) or die "no registration\n";
my ($child0) = @{ child_pids($log) };

ok(gateway_stop(), 'gateway stopped (SIGTERM)');
Time::HiRes::sleep(2.5);    # the bridge backs off up to its 1 s bound
ok(alive($pid), 'the bridge keeps running while the gateway is down');
like(slurp($log), qr/cannot connect to 127\.0\.0\.1:\d+: connect\(\) failed: Connection refused/,
     'it logs the failed attempts');
like(slurp($log), qr/reconnecting in \d+ms/, 'and the backoff');
unlike(slurp($log), qr/reconnecting in [2-9]\.\d+s/,
       'no wait beyond --backoff-max 1s');

ok(gateway_start(), 'gateway started again');
my $t0 = Time::HiRes::time();
my $e = wait_entry('demo', $log, 10);
my $dt = Time::HiRes::time() - $t0;
ok($e, 'registered again');
cmp_ok($dt, '<', 1 + 3, sprintf 'within the backoff bound (1 s) + start '
       . 'of a child + handshake: %.2f s', $dt);
is_deeply(tool_names($e), [qw(add echo system_info time)], 'tools back');
my @children = @{ child_pids($log) };
is(scalar @children, 2, 'a second child was started');
ok(!alive($child0), 'the first child was stopped');
like(slurp($log), qr/stopping child $child0: the next connection is a new MCP session/,
     'the log says why');
is(exit_code(bridge_stop($pid)), 0, 'exit 0');
gateway_stop_mine();
--- error_log eval
[
    qr/server "demo" of agent "a1" registered with 4 tool\(s\).*\n(?s:.*)server "demo" of agent "a1" registered with 4 tool\(s\)/,
]
--- no_error_log
[alert]
[crit]



=== TEST 5: reload with reverse_mcp_shutdown close: 1001 from the old worker, the bridge reconnects to a new one
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_shutdown close;
reverse_mcp_agent a1 { server demo token=demo-token; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $log = "$servroot/logs/bridge.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$port/ws",
    '--name', 'demo', '--token', 'demo-token',
    '--backoff-min', '100ms', '--backoff-max', '1s',
    '--', $main::Node, 'tools/demo-stdio-server.mjs');
my $e0 = wait_entry('demo', $log) or die "no registration\n";
my %old = map { $_ => 1 } nginx_worker_pids();
ok($old{ $e0->{owner_pid} }, 'owned by a worker');

ok(nginx_reload(), 'reloaded');
my $t0 = Time::HiRes::time();
my $e = wait_entry('demo', $log, 10,
                   sub { $_[0]{connection_id} != $e0->{connection_id} });
my $dt = Time::HiRes::time() - $t0;
ok($e, 'registered again on a new connection');
# backoff-max 1 s plus a node child's start; far below the default 30 s
# (5 s of margin: the child's start is slow on a loaded machine)
cmp_ok($dt, '<', (1 + 5) * timeout_scale(),
       sprintf 'within the bound: %.2f s', $dt);
ok(!$old{ $e->{owner_pid} }, 'owned by a new worker');
is_deeply(tool_names($e), [qw(add echo system_info time)], 'tools back');
like(slurp($log), qr/the gateway closed the WebSocket with 1001/,
     'the bridge saw 1001');
is(exit_code(bridge_stop($pid)), 0, 'exit 0');
--- no_error_log
[alert]
[crit]



=== TEST 6: wss: verified with --ca-file (IP and host name), refused without it (a TLS error, retried), accepted with --insecure; a host name mismatch is refused
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    server s2 token=t2;
    server s3 token=t3;
    server s4 token=t4;
    server s5 token=t5;
}
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2 ssl;
    listen 127.0.0.2:$TEST_NGINX_SERVER_PORT2 ssl;
    server_name localhost;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    location /ws { reverse_mcp_connector a1; }
}
--- config
location = /status { reverse_mcp_status; }
--- test_code
my @demo = ('--', $main::Node, 'tools/demo-stdio-server.mjs');
my @fast = ('--backoff-min', '100ms', '--backoff-max', '300ms');
my %p;
$p{s1} = bridge_start("$servroot/logs/s1.log", {},
    '--url', "wss://127.0.0.1:$port2/ws", '--name', 's1', '--token', 't1',
    '--ca-file', "$cert_dir/ca.crt", @demo);
$p{s2} = bridge_start("$servroot/logs/s2.log", {},
    '--url', "wss://localhost:$port2/ws", '--name', 's2', '--token', 't2',
    '--ca-file', "$cert_dir/ca.crt", '--query-token', 'off', @demo);
$p{s3} = bridge_start("$servroot/logs/s3.log", {},
    '--url', "wss://127.0.0.1:$port2/ws", '--name', 's3', '--token', 't3',
    @fast, @demo);
$p{s4} = bridge_start("$servroot/logs/s4.log", {},
    '--url', "wss://127.0.0.1:$port2/ws", '--name', 's4', '--token', 't4',
    '--insecure', @demo);
$p{s5} = bridge_start("$servroot/logs/s5.log", {},
    '--url', "wss://127.0.0.2:$port2/ws", '--name', 's5', '--token', 't5',
    '--ca-file', "$cert_dir/ca.crt", @fast, @demo);

ok(wait_entry('s1', "$servroot/logs/s1.log"),
   's1: --ca-file, URL with the IP address: registered');
ok(wait_entry('s2', "$servroot/logs/s2.log"),
   's2: --ca-file, URL with the host name (SNI, SAN DNS:localhost): registered');
ok(wait_entry('s4', "$servroot/logs/s4.log"), 's4: --insecure: registered');
like(slurp("$servroot/logs/s4.log"), qr/--insecure: the gateway's certificate is NOT verified/,
     's4: --insecure is warned about');

# without the CA: the system CAs do not know ours
ok(wait_until(sub { count_in("$servroot/logs/s3.log", qr/TLS handshake/) >= 2 }, 10),
   's3: several attempts') or diag(slurp("$servroot/logs/s3.log"));
like(slurp("$servroot/logs/s3.log"),
     qr/\[error\] TLS handshake with 127\.0\.0\.1:\d+ \(127\.0\.0\.1:\d+\) failed: certificate verify failed \((unable to get local issuer certificate|self[- ]signed certificate in certificate chain)\)$/m,
     's3: a clear TLS error');
ok(alive($p{s3}), 's3: retried, not exited');
like(slurp("$servroot/logs/s5.log"),
     qr/TLS handshake with 127\.0\.0\.2:\d+ .*failed: certificate verify failed \(IP address mismatch\)/,
     's5: 127.0.0.2 is not in the certificate: refused');
my $j = status_json();
ok(!entry('s3', $j) && !entry('s5', $j), 's3 and s5 never registered');

for my $s (sort keys %p) {
    is(exit_code(bridge_stop($p{$s})), 0, "$s: exit 0");
}
--- error_log eval
[
    qr/server "s1" of agent "a1" registered/,
    qr/server "s2" of agent "a1" registered/,
    qr/server "s4" of agent "a1" registered/,
]
--- no_error_log
[alert]
[crit]



=== TEST 7: mTLS: --cert/--key for a gateway with ssl_verify_client on
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2 ssl;
    server_name localhost;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
    ssl_verify_client on;
    location /ws { reverse_mcp_connector a1; }
}
--- config
location = /status { reverse_mcp_status; }
--- test_code
if (!-s "$cert_dir/ca.key") {
    Test::Builder->new->skip("no CA key in $cert_dir: cannot sign a client "
                             . 'certificate');
    return;
}
my $d = "$servroot/client";
mkdir $d;
write_file("$d/ext.cnf", "basicConstraints=CA:FALSE\n"
    . "keyUsage=digitalSignature,keyEncipherment\n"
    . "extendedKeyUsage=clientAuth\n");
for my $cmd (
    "openssl req -newkey rsa:2048 -nodes -subj /CN=bridge -keyout $d/c.key -out $d/c.csr",
    "openssl x509 -req -days 2 -set_serial " . time() . " -in $d/c.csr -CA $cert_dir/ca.crt -CAkey $cert_dir/ca.key -extfile $d/ext.cnf -out $d/c.crt")
{
    my $out = `$cmd 2>&1`;
    die "$cmd: $out" if $?;
}
my @demo = ('--', $main::Node, 'tools/demo-stdio-server.mjs');
my $p1 = bridge_start("$servroot/logs/s1.log", {},
    '--url', "wss://localhost:$port2/ws", '--name', 's1', '--token', 't1',
    '--ca-file', "$cert_dir/ca.crt", '--cert', "$d/c.crt", '--key',
    "$d/c.key", @demo);
my $p2 = bridge_start("$servroot/logs/s2.log", {},
    '--url', "wss://localhost:$port2/ws", '--name', 's2', '--token', 't2',
    '--ca-file', "$cert_dir/ca.crt", '--backoff-min', '100ms',
    '--backoff-max', '300ms', @demo);
ok(wait_entry('s1', "$servroot/logs/s1.log"), 's1 with a client certificate: registered');
ok(wait_until(sub { slurp("$servroot/logs/s2.log") =~ /HTTP 400/ }, 10),
   's2 without: nginx answers 400');
like(slurp("$servroot/logs/s2.log"),
     qr/answered the WebSocket upgrade with HTTP 400 Bad Request: "<html>.*No required SSL certificate was sent/,
     's2: the status and the page in one line');
ok(alive($p2), 's2: a 400 is retried');
ok(!entry('s2'), 's2 not registered');
is(exit_code(bridge_stop($p1)), 0, 's1: exit 0');
is(exit_code(bridge_stop($p2)), 0, 's2: exit 0');
--- no_error_log
[alert]
[crit]



=== TEST 8: through an HTTP proxy (CONNECT): https_proxy for wss, http_proxy for ws, Basic proxy auth, no_proxy, a refusing proxy
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    server s2 token=t2;
    server s3 token=t3;
    server s4 token=t4;
}
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2 ssl;
    server_name localhost;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    location /ws { reverse_mcp_connector a1; }
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $plog = "$servroot/logs/proxy.log";
my ($pp) = proxy_start($plog, auth => 'bridge:p@ss');
my $dlog = "$servroot/logs/proxy-deny.log";
my ($dp) = proxy_start($dlog, deny => 1);
my @demo = ('--', $main::Node, 'tools/demo-stdio-server.mjs');

# wss through the proxy, with credentials (percent-encoded "@")
my $p1 = bridge_start("$servroot/logs/s1.log",
    { https_proxy => "http://bridge:p%40ss\@127.0.0.1:$pp" },
    '--url', "wss://localhost:$port2/ws", '--name', 's1', '--token', 't1',
    '--ca-file', "$cert_dir/ca.crt", @demo);
ok(wait_entry('s1', "$servroot/logs/s1.log"), 's1: wss through the proxy');
like(slurp($plog), qr/^CONNECT localhost:$port2 auth=bridge:p\@ss$/m,
     'the proxy saw CONNECT localhost:port with the credentials');
like(slurp("$servroot/logs/s1.log"), qr/using the proxy 127\.0\.0\.1:$pp \(https_proxy\)/,
     's1: logs the proxy');

# ws through the proxy (HTTP_PROXY), no credentials: 407, retried
my $p2 = bridge_start("$servroot/logs/s2.log",
    { HTTP_PROXY => "127.0.0.1:$pp" }, '--backoff-min', '100ms',
    '--backoff-max', '300ms', '--url', "ws://127.0.0.1:$port/ws",
    '--name', 's2', '--token', 't2', @demo);
ok(wait_until(sub { slurp("$servroot/logs/s2.log") =~ /refused CONNECT/ }, 10),
   's2: the proxy refuses');
like(slurp("$servroot/logs/s2.log"),
     qr/the proxy 127\.0\.0\.1:$pp refused CONNECT to 127\.0\.0\.1:$port: HTTP 407 Proxy Authentication Required/,
     's2: 407 in the log');
ok(alive($p2), 's2: retried');

# no_proxy: direct, the (denying) proxy sees nothing of s3
my $p3 = bridge_start("$servroot/logs/s3.log",
    { http_proxy => "http://127.0.0.1:$dp", no_proxy => "example.com, 127.0.0.0/8" },
    '--url', "ws://127.0.0.1:$port/ws", '--name', 's3', '--token', 't3',
    @demo);
ok(wait_entry('s3', "$servroot/logs/s3.log"), 's3: no_proxy 127.0.0.0/8: direct');
like(slurp("$servroot/logs/s3.log"), qr/no_proxy matches 127\.0\.0\.1: connecting directly/,
     's3: says so');
is(slurp($dlog), '', 'the proxy saw nothing of s3');

# the denying proxy, ws: a 403 from a proxy is not a token refusal
my $p4 = bridge_start("$servroot/logs/s4.log",
    { http_proxy => "http://127.0.0.1:$dp", no_proxy => 'localhost,.example.org' },
    '--backoff-min', '100ms', '--backoff-max', '300ms',
    '--url', "ws://127.0.0.1:$port/ws", '--name', 's4', '--token', 't4',
    @demo);
ok(wait_until(sub { count_in("$servroot/logs/s4.log", qr/HTTP 403/) >= 2 }, 10),
   "s4: the proxy's 403 is retried");
ok(alive($p4), 's4: still running');
cmp_ok(scalar(() = slurp($dlog) =~ /^CONNECT 127\.0\.0\.1:$port$/mg), '>=', 2,
       'the proxy saw s4 twice or more');

for ($p1, $p2, $p3, $p4) {
    is(exit_code(bridge_stop($_)), 0, "bridge $_: exit 0");
}
--- no_error_log
[alert]
[crit]



=== TEST 9: a child that crashes after initialize: clear log line with the status; restarted (restart) or the bridge exits 4 (exit)
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 { server c1 token=t1; server c2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $js = script_server("$servroot/crash.mjs", exit_after_init => 3);
my $log = "$servroot/logs/restart.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$port/ws",
    '--name', 'c1', '--token', 't1', '--backoff-min', '100ms',
    '--backoff-max', '500ms', '--', $main::Node, $js);
ok(wait_until(sub { count_in($log, qr/\] child \d+ exited with status 3/) >= 3 }, 20),
   'restart: the child crashed three times') or diag(slurp($log));
ok(alive($pid), 'restart: the bridge runs on');
my $l = slurp($log);
like($l, qr/\[error\] child (\d+) exited with status 3 after \d+\.\ds/,
     'restart: a clear log line with the status');
like($l, qr/restarting the child in \d+/, 'restart: says it restarts');
cmp_ok(scalar @{ child_pids($log) }, '>=', 3, 'restart: new children');
is(exit_code(bridge_stop($pid)), 0, 'restart: SIGTERM: exit 0');

my $log2 = "$servroot/logs/exit.log";
my $t0 = Time::HiRes::time();
my $pid2 = bridge_start($log2, {}, '--url', "ws://127.0.0.1:$port/ws",
    '--name', 'c2', '--token', 't2', '--on-child-exit', 'exit',
    '--', $main::Node, $js);
my $st = bridge_wait($pid2, 15);
is(exit_code($st), 4, 'exit: the bridge exits with status 4');
my $l2 = slurp($log2);
like($l2, qr/child \d+ exited with status 3/, 'exit: the status is logged');
like($l2, qr/closing the WebSocket with 1011 "MCP server process exited with status 3"/,
     'exit: the WebSocket is closed with 1011');
--- error_log eval
[
    qr/server "c2" of agent "a1" closed the WebSocket with 1011 "MCP server process exited with status 3"/,
]
--- no_error_log
[alert]
[crit]



=== TEST 10: a child writing garbage on stdout: each bad line logged and dropped, the good ones registered
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 { server g1 token=t1; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $js = script_server("$servroot/garbage.mjs", garbage => 1,
                       tools => [qw(alpha beta)]);
my $log = "$servroot/logs/bridge.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$port/ws",
    '--name', 'g1', '--token', 't1', '--', $main::Node, $js);
my $e = wait_entry('g1', $log) or die "no registration\n";
is_deeply(tool_names($e), [qw(alpha beta)], 'registered with its tools');
my $l = slurp($log);
my $bad = qr/\[warn\] child \d+ wrote a line that is not a JSON-RPC message/;
like($l, qr/$bad \(not a JSON object or array at byte 0\), dropped, not forwarded: "this is not JSON"/,
     'text');
like($l, qr/$bad \(unexpected end of the line at byte 37\), dropped, not forwarded: "\{"jsonrpc": "2.0", "method": "broken""/,
     'truncated JSON');
like($l, qr/$bad \(not a JSON object or array at byte 0\), dropped, not forwarded: "42"/,
     'a JSON number');
like($l, qr/$bad \(not valid UTF-8 at byte 0\), dropped, not forwarded: "\\xff\\xfe\{\}"/,
     'invalid UTF-8, quoted as \\xNN');
like($l, qr/$bad \(data after the JSON value at byte 7\)/, 'trailing data');
cmp_ok(scalar(() = $l =~ /"garbage between messages"/g), '>=', 3,
       'garbage between messages, each dropped');
ok(alive($pid), 'the bridge runs on');
is(exit_code(bridge_stop($pid)), 0, 'exit 0');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 11: backpressure: a child flooding 24 MiB of notifications before it answers: all relayed in order, bounded memory
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 { server f1 token=t1; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
# 3000 messages of 8 KiB, then a line longer than --max-message 64k
# (dropped), then the handshake
my $js = script_server("$servroot/flood.mjs", flood => [3000, 8192]);
my $src = slurp($js);
$src =~ s/(const rl = )/out(JSON.stringify({ jsonrpc: '2.0', method: 'notifications\/big', params: { pad: 'y'.repeat(70000) } }));\n$1/;
write_file($js, $src);
my $log = "$servroot/logs/bridge.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$port/ws",
    '--name', 'f1', '--token', 't1', '--max-message', '64k',
    '--', $main::Node, $js);
my $e = wait_entry('f1', $log, 60) or die "no registration\n";
my $j = status_json();
# the gateway counts every message: the flood, initialize and tools/list
# results (the notifications/initialized is ours to send)
is($j->{counters}{messages_in}, 3000 + 2, 'the gateway got all 3002 messages');
my $hwm = (slurp("/proc/$pid/status") =~ /^VmHWM:\s+(\d+) kB/m)[0];
# (a TEST_NGINX_BRIDGE build with sanitizers pays for shadow memory)
my $max = $ENV{TEST_NGINX_BRIDGE} ? 512 : 20;
cmp_ok($hwm, '<', $max * 1024,
       "bridge peak RSS ${hwm} kB < $max MiB for 24 MiB relayed");
like(slurp($log), qr/\[error\] child \d+ wrote a line longer than --max-message \(65536 bytes\), dropped, not forwarded: "\{"jsonrpc":"2\.0","method":"notifications\/big"/,
     'the line over --max-message is dropped, with its start');
is(exit_code(bridge_stop($pid)), 0, 'exit 0');
--- no_error_log
[alert]
[crit]



=== TEST 12: a silent gateway (worker stopped) is detected by the ping timeout; the bridge reconnects to the other worker
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 { server demo token=demo-token; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $log = "$servroot/logs/bridge.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$port/ws",
    '--name', 'demo', '--token', 'demo-token', '--ping-interval', '300ms',
    '--ping-timeout', '600ms', '--backoff-min', '100ms', '--backoff-max',
    '300ms', '--', $main::Node, 'tools/demo-stdio-server.mjs');
my $e0 = wait_entry('demo', $log) or die "no registration\n";
my $owner = $e0->{owner_pid};
kill 'STOP', $owner;
push @main::Stopped, $owner;
my $e = wait_entry('demo', $log, 10,
                   sub { $_[0]{connection_id} != $e0->{connection_id} });
ok($e, 'registered again on a new connection');
isnt($e && $e->{owner_pid}, $owner, 'owned by the other worker');
like(slurp($log), qr/\[warn\] nothing from the gateway within 600ms of a ping: the connection is dead/,
     'the bridge logs the dead connection');
kill 'CONT', $owner;
@main::Stopped = ();
is(exit_code(bridge_stop($pid)), 0, 'exit 0');
--- no_error_log
[alert]
[crit]



=== TEST 13: command line: --help is a manual page; bad options exit 2; a command that cannot run exits 1
--- config
location = /status { return 200; }
--- test_code
my $help = `$main::Bridge --help`;
is($? >> 8, 0, '--help: exit 0');
like($help, qr/^NAME\n.*^SYNOPSIS\n.*^DESCRIPTION\n.*^OPTIONS\n.*^ENVIRONMENT\n.*^EXIT STATUS\n.*^EXAMPLES\n/ms,
     '--help: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, ENVIRONMENT, EXIT STATUS, EXAMPLES');
like($help, qr/--token TOKEN\n.*visible to every local user in ps/si,
     '--help: --token is visible in ps');
like($help, qr/every connection gets a fresh child/, '--help: the reconnect policy');
for my $bad (['--name x -- true', qr/--url is required/],
             ['--url ws://h/ws -- true', qr/--name is required/],
             ['--url ws://h/ws --name a__b -- true', qr/invalid --name "a__b"/],
             ['--url ftp://h --name a -- true', qr/must start with ws:\/\/ or wss:\/\//],
             ['--url ws://h/ws --name a', qr/no COMMAND/],
             ['--url ws://h/ws --name a --backoff-min 2s --backoff-max 1s -- true', qr/--backoff-max is smaller/],
             ['--url ws://h/ws --name a --on-child-exit maybe -- true', qr/restart or exit/],
             ['--url ws://h/ws --name a --max-message 10 -- true', qr/invalid --max-message/],
             ['--url ws://h/ws --name a --bogus -- true', qr/unknown/])
{
    my $out = `$main::Bridge $bad->[0] 2>&1`;
    is($? >> 8, 2, "'$bad->[0]': exit 2");
    like($out, $bad->[1], "'$bad->[0]': says why");
}
my $out = `$main::Bridge --url ws://127.0.0.1:$port/ws --name a --token t -- /nonexistent/server 2>&1`;
is($? >> 8, 1, 'a command that cannot run: exit 1');
like($out, qr/cannot run "\/nonexistent\/server": No such file or directory/,
     'and says why');
$out = `$main::Bridge --url ws://127.0.0.1:$port/ws --name a --token-file /nonexistent -- true 2>&1`;
is($? >> 8, 1, 'an unreadable --token-file: exit 1');
like($out, qr/cannot open --token-file "\/nonexistent"/, 'and says why');



=== TEST 14: backpressure toward the child: a gateway (the ws package) sends 40 MiB in 2 MiB messages to a child that reads slowly: all arrive in order, bounded memory, no false ping timeout
--- config
location = /status { return 200; }
--- test_code
my $gport = free_port();
my $result = "$servroot/gateway-result.txt";
my $gw = write_file("$servroot/fake-gateway.mjs", <<"_JS_");
import fs from 'node:fs';
import { WebSocketServer } from 'ws';
const wss = new WebSocketServer({ host: '127.0.0.1', port: $gport,
                                  maxPayload: 64 << 20 });
wss.on('connection', (ws, req) => {
  fs.appendFileSync('$result', 'hello ' + req.url + ' '
    + req.headers['x-mcp-server-name'] + ' ' + req.headers.authorization + '\\n');
  for (let i = 0; i < 20; i++) {
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/big',
                             params: { i, pad: 'z'.repeat(2 << 20) } }));
  }
  ws.on('message', (m) => {
    fs.appendFileSync('$result', 'child says ' + m + '\\n');
    ws.close(1000, 'done');
  });
});
_JS_
my $child = write_file("$servroot/slow-child.mjs", <<'_JS_');
import readline from 'node:readline';
const rl = readline.createInterface({ input: process.stdin });
let next = 0, ok = true;
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.params.i !== next++ || m.params.pad.length !== 2 << 20) ok = false;
  rl.pause();
  setTimeout(() => {
    rl.resume();
    if (next === 20) {
      process.stdout.write(JSON.stringify({ jsonrpc: '2.0',
        method: 'notifications/done', params: { count: next, ok } }) + '\n');
    }
  }, 150);
});
_JS_
my $gpid = fork // die "fork: $!\n";
if (!$gpid) {
    chdir $RepoRoot;
    open STDOUT, '>', "$servroot/logs/fake-gateway.log";
    open STDERR, '>&', \*STDOUT;
    no warnings 'exec';
    exec $main::Node, $gw;
    POSIX::_exit(127);
}
$main::Children{$gpid} = 'gateway';
ok(wait_until(sub { listening($gport) }, 10), 'the fake gateway listens');
my $log = "$servroot/logs/bridge.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$gport/ws?x=1",
    '--name', 'slow', '--token', 'tok en&=', '--ping-interval', '300ms',
    '--ping-timeout', '600ms', '--', $main::Node, $child);
ok(wait_until(sub { slurp($result) =~ /child says/ }, 30),
   'the child got everything and answered') or diag(slurp($log));
my $r = slurp($result);
like($r, qr/^hello \/ws\?x=1&server_name=slow&token=tok%20en%26%3D slow Bearer tok en&=$/m,
     'the query (kept, extended, percent-encoded) and the headers');
like($r, qr/child says \{"jsonrpc":"2\.0","method":"notifications\/done","params":\{"count":20,"ok":true\}\}/,
     'the child read 20 messages of 2 MiB, in order, intact');
my $hwm = (slurp("/proc/$pid/status") =~ /^VmHWM:\s+(\d+) kB/m)[0];
my $max = $ENV{TEST_NGINX_BRIDGE} ? 512 : 24;
cmp_ok($hwm, '<', $max * 1024,
       "bridge peak RSS ${hwm} kB < $max MiB for 40 MiB relayed");
unlike(slurp($log), qr/nothing from the gateway/,
       'no ping timeout while reading was paused');
like(slurp($log), qr/the gateway closed the WebSocket with 1000 "done"/,
     'the close of the gateway is logged');
is(exit_code(bridge_stop($pid)), 0, 'exit 0');
kill 'TERM', $gpid;
waitpid $gpid, 0;
delete $main::Children{$gpid};



=== TEST 16: a misbehaving gateway: masked frames, RSV bits, invalid UTF-8, too big, a wrong Sec-WebSocket-Accept are refused with the right close code; pings answered; a child the gateway never spoke to is kept
--- config
location = /status { return 200; }
--- test_code
require Digest::SHA;
require MIME::Base64;
my $gport = free_port();
my $glog = "$servroot/logs/fake-gateway.log";
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $gport,
                                Listen => 8, ReuseAddr => 1) or die "$!\n";
my @cases = qw(masked rsv utf8 toobig badaccept ping);
my $gpid = fork // die "fork: $!\n";
if (!$gpid) {
    for my $case (@cases) {
        my $c = $srv->accept or POSIX::_exit(1);
        my $req = '';
        while ($req !~ /\r\n\r\n/) {
            sysread($c, my $b, 4096) or POSIX::_exit(1);
            $req .= $b;
        }
        my ($key) = $req =~ /^Sec-WebSocket-Key: (\S+)\r$/mi;
        my $accept = MIME::Base64::encode_base64(Digest::SHA::sha1(
            $key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');
        $accept = 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' if $case eq 'badaccept';
        syswrite $c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"
            . "\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n\r\n";
        my %send = (
            masked => "\x81\x85abcd" . ("hello" ^ "abcda"),
            rsv => "\xc1\x02{}",
            utf8 => "\x81\x02\xff\xfe",
            toobig => "\x82\x7f" . pack('Q>', 2 * 1024 * 1024),
            badaccept => '',
            ping => "\x89\x04ping",
        );
        syswrite $c, $send{$case};
        if ($case eq 'ping') {
            Time::HiRes::sleep(0.3);
            syswrite $c, "\x88\x06\x03\xe8" . 'done';
        }
        # what the bridge sends until it hangs up (3 s at most)
        my $in = '';
        my $sel = IO::Select->new($c);
        while ($sel->can_read(3)) {
            sysread($c, my $b, 65536) or last;
            $in .= $b;
        }
        my @seen;
        while (length $in >= 2) {
            my ($b0, $b1) = unpack 'CC', $in;
            my ($len, $off) = ($b1 & 0x7f, 2);
            ($len, $off) = (unpack('n', substr $in, 2, 2), 4) if $len == 126;
            ($len, $off) = (unpack('Q>', substr $in, 2, 8), 10) if $len == 127;
            my $mask = ($b1 & 0x80) ? substr($in, $off, 4) : "\0\0\0\0";
            $off += 4 if $b1 & 0x80;
            last if length $in < $off + $len;
            my $p = substr($in, $off, $len) ^ substr($mask x ($len / 4 + 1), 0, $len);
            $in = substr $in, $off + $len;
            my $op = $b0 & 0x0f;
            push @seen, $op == 8
                ? 'close ' . unpack('n', $p) . ' "' . substr($p, 2) . '"'
                : $op == 10 ? "pong \"$p\"" : "op $op";
            $seen[-1] .= ' unmasked' unless $b1 & 0x80;
        }
        open my $l, '>>', $glog;
        print $l "$case: " . (join(', ', @seen) || 'nothing') . "\n";
        close $l;
        close $c;
    }
    POSIX::_exit(0);
}
close $srv;
$main::Children{$gpid} = 'gateway';
my $log = "$servroot/logs/bridge.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$gport/ws",
    '--name', 'x', '--token', 't', '--max-message', '1m',
    '--backoff-min', '50ms', '--backoff-max', '100ms',
    '--', $main::Node, 'tools/demo-stdio-server.mjs');
ok(wait_until(sub { waitpid($gpid, POSIX::WNOHANG()) == $gpid }, 30),
   'the fake gateway went through its cases');
delete $main::Children{$gpid};
my $g = slurp($glog);
like($g, qr/^masked: close 1002 "masked server frame"$/m, 'masked frame: 1002');
like($g, qr/^rsv: close 1002 "RSV bits set"$/m, 'RSV bit: 1002');
like($g, qr/^utf8: close 1007 "invalid UTF-8 in text message"$/m,
     'invalid UTF-8: 1007');
like($g, qr/^toobig: close 1009 "message too big"$/m,
     'a frame over --max-message: 1009 from its header');
like($g, qr/^badaccept: nothing$/m, 'a wrong Sec-WebSocket-Accept: nothing sent');
like($g, qr/^ping: pong "ping", close 1000 ""$/m,
     'ping: pong with the payload, then the close code echoed');
unlike($g, qr/unmasked/, 'every frame of the bridge is masked');
my $l = slurp($log);
like($l, qr/the gateway broke the WebSocket protocol \(masked server frame\): closing with 1002/,
     'the bridge logs the protocol error');
like($l, qr/answered 101 with an invalid upgrade: a wrong Sec-WebSocket-Accept/,
     'and the wrong accept key');
like($l, qr/the gateway closed the WebSocket with 1000 "done"/, 'and the close');
is(scalar @{ child_pids($log) }, 1,
   'one child all along: the gateway never wrote to it');
ok(alive($pid), 'the bridge runs on');
is(exit_code(bridge_stop($pid)), 0, 'exit 0');



=== TEST 15: the official SDK client calls server-everything through /mcp/<server> and the bridge: tools, a progress tool, a 3 MiB result
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_agent a1 { server everything token=ev-token; }
--- config
location /ws { reverse_mcp_connector a1; }
location /mcp {
    reverse_mcp_endpoint a1;
    client_max_body_size 8m;
}
location = /status { reverse_mcp_status; }
--- test_code
my $log = "$servroot/logs/bridge.log";
my $pid = bridge_start($log, {}, '--url', "ws://127.0.0.1:$port/ws",
    '--name', 'everything', '--token', 'ev-token',
    '--', $main::Node, $main::Everything, 'stdio');
wait_entry('everything', $log) or die "server-everything did not register\n";

# the SDK's Client over StreamableHTTPClientTransport; one JSON line out
my $js = write_file("$servroot/sdk-client.mjs", <<'_JS_');
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from
  '@modelcontextprotocol/sdk/client/streamableHttp.js';
const [url, bigMiB] = process.argv.slice(2);
const out = {};
const client = new Client({ name: 'bridge-test-client', version: '1.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
out.serverInfo = client.getServerVersion();
out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
const echo = await client.callTool({ name: 'echo',
                                     arguments: { message: 'hello, bridge' } });
out.echo = echo.content?.[0]?.text;
const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
out.sum = sum.content?.[0]?.text;
const progress = [];
const long = await client.callTool(
  { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } },
  undefined, { onprogress: (p) => progress.push(p), timeout: 30000 });
out.progress = progress;
out.long = long.content?.[0]?.text;
const big = 'x'.repeat(Number(bigMiB) * 1024 * 1024);
const r = await client.callTool({ name: 'echo', arguments: { message: big } },
                                undefined, { timeout: 60000 });
out.bigLen = r.content?.[0]?.text?.length;
out.bigOk = r.content?.[0]?.text === 'Echo: ' + big;
await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
_JS_
my $out = `cd '$RepoRoot' && '$main::Node' '$js' http://127.0.0.1:$port/mcp/everything 3 2>'$servroot/logs/sdk-client.err'`;
is($? >> 8, 0, 'the SDK client ran') or diag(slurp("$servroot/logs/sdk-client.err"));
my $r = eval { Cpanel::JSON::XS->new->decode($out) } // {};
is($r->{serverInfo}{name}, 'ngx_http_reverse_mcp_module', 'the gateway answers');
ok((grep { $_ eq 'trigger-long-running-operation' } @{ $r->{tools} || [] }),
   'tools/list: the tools of server-everything, their own names');
is($r->{echo}, 'Echo: hello, bridge', 'echo');
is($r->{sum}, 'The sum of 2 and 40 is 42.', 'get-sum');
is_deeply([ map { $_->{progress} } @{ $r->{progress} || [] } ], [1, 2, 3, 4],
          'trigger-long-running-operation: progress 1..4 reached the client');
like($r->{long} // '', qr/Long running operation completed/, 'and its result');
is($r->{bigLen}, 3 * 1024 * 1024 + 6, 'a 3 MiB echo came back whole');
ok($r->{bigOk}, 'and intact');
unlike(slurp($log), qr/reconnecting/, 'the bridge never reconnected');
is(exit_code(bridge_stop($pid)), 0, 'exit 0');
--- no_error_log
[alert]
[crit]
