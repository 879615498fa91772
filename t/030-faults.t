# Faults (issue 6), each with what happens to every call in flight and to
# the registry: kill -9 of the worker that holds the caller's HTTP request
# (the owner cancels the call on the reverse server) and of the worker that
# owns the socket (its calls fail at once with -32003, its servers are
# purged, the others untouched); nginx -s reload with 100 servers connected
# and calls in flight (each answered exactly once); a binary upgrade
# (USR2, then QUIT of the old master: the new master has a zone of its own,
# shared memory does not survive exec); a reverse server that goes silent
# (half-open: the ping timeout closes it, its calls fail with -32003), one
# that stops reading (bounded send queue, -32004, the socket stays), one
# that floods notifications; a caller that reads a large SSE reply slowly;
# a missing mailbox socket (-32004, nothing hangs).
#
# Covered elsewhere: a full registry zone (t/005 TEST 7: 1013, the live
# entries stay), worker_shutdown_timeout (t/005 TEST 10), the endpoint's
# session reserve in the zone (t/008).

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::ReverseMCP;
use Test::Nginx::MCP;
use POSIX ();
use Time::HiRes ();
use File::Path ();

master_on();
workers(2);

run_tests();

# ------------------------------------------------------------------------
# helpers (test_code runs in package main)
# ------------------------------------------------------------------------

# http_config: the zone and agent "a1" with servers s1..sN (token "t")
sub agent_conf {
    my (%o) = @_;
    my $conf = "reverse_mcp_zone rmcp:" . ($o{zone} // '4m') . ";\n"
             . "reverse_mcp_agent a1 {\n    max_servers 256;\n";
    $conf .= "    server s$_ token=t;\n" for 1 .. ($o{servers} // 4);
    return $conf . "}\n" . ($o{more} // '');
}

sub servers_of {
    my ($j) = @_;
    my ($a) = grep { $_->{name} eq 'a1' } @{ ($j // status_json())->{agents} };
    return @{ $a->{servers} || [] };
}

# a reverse server whose "slow" tool is answered when the test says so
sub slow {
    return up(tools => [ tool('echo'), tool('slow'), tool('big') ],
              hold => ['slow'], @_);
}

sub call_msg {
    my ($id, $name, $args) = @_;
    return req($id, 'tools/call', { name => $name,
                                    arguments => $args // { text => $id } });
}

# answers the held calls of $s: "done <server> <id>"
sub release {
    my ($s) = @_;
    $s->respond($_, { content => [ { type => 'text',
                                     text => "done $s->{name} $_" } ] })
        for splice @{ $s->{held} };
}

# The worker we SIGKILL makes the master log "worker process PID exited on
# signal 9"; the harness accepts that line for this pid only.
sub forget_expected_kill {
    my ($pid) = @_;
    expect_worker_kill($pid);
    ok(wait_until(sub { error_log_since_start() =~ / $pid exited on signal 9\b/ },
                  3, 0.05),
       "master logged: worker process $pid exited on signal 9");
}

# A copy of the harness's nginx (its configuration with logs, pid and
# port of its own, prefix $dir, "daemon on": nginx ignores USR2 while the
# process that started it lives, since it would then be the new binary of
# a running old one).  Returns (master pid, port).
our @Stray;
END { kill 'KILL', grep { defined } @Stray }

sub daemon_nginx {
    my ($dir) = @_;
    File::Path::make_path("$dir/logs");
    my $port = free_port();
    my $conf = slurp("$ServRoot/conf/nginx.conf");
    $conf =~ s{\Q$ServRoot\E/logs/}{$dir/logs/}g;
    $conf =~ s{(listen\s+\S+:)$ServerPort;}{$1$port;} or die "no listen\n";
    $conf =~ s{^daemon off;}{daemon on;}m or die "no daemon line\n";
    open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!\n";
    print $fh $conf;
    close $fh;
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/logs/stderr.log";
        open STDERR, '>&', \*STDOUT;
        no warnings 'exec';
        exec { $NginxBinary } $NginxBinary, '-p', "$dir/", '-c',
             "$dir/nginx.conf";
        POSIX::_exit(127);
    }
    waitpid $pid, 0;             # it daemonizes: the starter exits
    my $master;
    wait_until(sub {
        ($master) = slurp("$dir/logs/nginx.pid") =~ /(\d+)/;
        $master && nginx_worker_pids(master => $master) == 2;
    }, 10, 0.05) or die "nginx in $dir did not start: "
                        . slurp("$dir/logs/error.log") . "\n";
    push @Stray, $master;
    return ($master, $port);
}

# the process is gone (or a zombie nobody reaps)
sub gone {
    my ($pid) = @_;
    my $st = slurp("/proc/$pid/stat");
    return $st eq '' || $st =~ /^\d+ \(.*\) [ZX]/;
}

sub cancelled_ids {
    my ($s) = @_;
    return map { $_->{params}{requestId} }
           $s->received('notifications/cancelled');
}

__DATA__

=== TEST 1: kill -9 of the worker holding the caller's request: the owner cancels the call on the server (notifications/cancelled), the registry is intact
--- http_config eval
main::agent_conf()
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s = slow(name => 's1');
my $e0 = entry('s1');
my $owner = $e0->{owner_pid};
my ($victim) = grep { $_ != $owner } nginx_worker_pids();
my $sid = session();
my $h = mcp_start(worker => $victim, session => $sid,
                  msg => call_msg(1, 's1__slow'));
ok($s->pump_until(sub { @{ $s->{held} } == 1 }, 5),
   "the call from worker $victim reached the server (owner $owner)");
my $id = $s->{held}[0];

my $t0 = Time::HiRes::time();
kill 'KILL', $victim;
ok($s->pump_until(sub { grep { $_ == $id } cancelled_ids($s) }, 5),
   "the server got notifications/cancelled for request $id");
note(sprintf 'FIGURE kill-caller: notifications/cancelled %.0f ms after '
     . 'the kill', (Time::HiRes::time() - $t0) * 1000);
my ($n) = grep { $_->{params}{requestId} == $id }
          $s->received('notifications/cancelled');
ok(length($n->{params}{reason} // ''), "... with a reason: $n->{params}{reason}");
ok(mcp_poll($h, 3), "the caller's connection ends");
is($h->{buf}, '', '... without a response (its worker died)');
forget_expected_kill($victim);

my $e1 = entry('s1');
is_deeply([ @$e1{qw(connection_id owner_pid)} ],
          [ @$e0{qw(connection_id owner_pid)} ],
          's1 is still registered on the same connection and owner');
$s->respond($id, { content => [ { type => 'text', text => 'late' } ] });
ok(wait_until(sub { nginx_worker_pids() == 2 }, 3), 'the worker respawned');
my $r = mcp(not_worker => $owner, session => $sid, servers => [ $s ],
            msg => call_msg(2, 's1__echo', { text => 'after' }));
is($r->{json}{result}{content}[0]{text}, 'after',
   'a call from the respawned worker works (the late answer was dropped)');
is($r->{json}{id}, 2, '... with its own id');
$s->disconnect;
--- no_error_log
[crit]



=== TEST 2: kill -9 of the owner: its calls fail at once with -32003 (or die with their worker), its servers are purged; the other worker's servers and calls are untouched
--- http_config eval
main::agent_conf()
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = slow(name => 's1');
my $victim = entry('s1')->{owner_pid};
my ($other) = grep { $_ != $victim } nginx_worker_pids();
my $s2 = slow(name => 's2', worker => $other);
my $e2 = entry('s2');
is($e2->{owner_pid}, $other, "s1 on $victim, s2 on $other");
my $sid = session();
my %h = (
    remote => mcp_start(worker => $other, session => $sid,
                        msg => call_msg(1, 's1__slow')),
    local  => mcp_start(worker => $victim, session => $sid,
                        msg => call_msg(2, 's1__slow')),
    other  => mcp_start(worker => $other, session => $sid,
                        msg => call_msg(3, 's2__slow')),
);
ok($s1->pump_until(sub { @{ $s1->{held} } == 2 }, 5), 's1 holds two calls');
ok($s2->pump_until(sub { @{ $s2->{held} } == 1 }, 5), 's2 holds one');

my $t0 = Time::HiRes::time();
kill 'KILL', $victim;
my $r = mcp_finish($h{remote}, 5);
my $t1 = Time::HiRes::time();
is($r->{json}{error}{code}, -32003,
   'the call from the other worker: -32003 at once');
like($r->{json}{error}{message}, qr/s1/, "... naming s1: $r->{json}{error}{message}");
ok(mcp_poll($h{local}, 3), "the call held by the dead worker: connection closed");
is($h{local}{buf}, '', '... without a response');
ok(wait_until(sub { !entry('s1') }, 3, 0.02), 's1 purged');
note(sprintf 'FIGURE kill-owner: -32003 after %.0f ms, purged after '
     . '%.0f ms', ($t1 - $t0) * 1000, (Time::HiRes::time() - $t0) * 1000);
ok($s1->ws->is_eof(2), "s1's socket is gone");
forget_expected_kill($victim);

is_deeply([ @{ entry('s2') }{qw(connection_id owner_pid)} ],
          [ @$e2{qw(connection_id owner_pid)} ], 's2 untouched');
my $held = $s2->{held}[0];
release($s2);
$r = mcp_finish($h{other}, 5);
is($r->{json}{result}{content}[0]{text}, "done s2 $held",
   "s2's call in flight is answered");
$s2->disconnect;
--- no_error_log
[crit]



=== TEST 3: nginx -s reload with 100 servers connected and 40 calls in flight (20 before, 20 after the reload): every call answered exactly once, the registry whole
--- http_config eval
main::agent_conf(servers => 100)
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my @s;
for my $i (1 .. 100) {
    my $s = Test::Nginx::ReverseMCP->new(port => $ServerPort, token => 't',
        name => "s$i", tools => [ tool('echo'), tool('slow') ],
        hold => ['slow']);
    push @s, $s;
}
is_deeply([ grep { $_ != 101 } map { $_->connect } @s ], [],
          '100 servers: 101');
$_->handshake(5) for @s;
ok(wait_until(sub { servers_of() == 100 }, 10, 0.05), '100 registered');
my %conn0 = map { $_->{name} => $_->{connection_id} } servers_of();
my $sid = session();

my (%h, %want);
my $start = sub {
    my ($i, $id) = @_;
    $h{$id} = mcp_start(session => $sid, msg => call_msg($id, "s${i}__slow"));
    $want{$id} = "s$i";
};
$start->($_, 100 + $_) for 1 .. 20;
ok(wait_until(sub { $_->pump(0.001) for @s[0 .. 19];
                    !grep { @{ $_->{held} } != 1 } @s[0 .. 19] }, 10, 0),
   '20 calls in flight on s1..s20');
ok(nginx_reload(), 'reload: new workers');
$start->($_, 100 + $_) for 21 .. 40;
ok(wait_until(sub { $_->pump(0.001) for @s[20 .. 39];
                    !grep { @{ $_->{held} } != 1 } @s[20 .. 39] }, 10, 0),
   '20 more calls in flight on s21..s40 after the reload');
release($_) for @s[0 .. 39];

my (%answers, @bad);
for my $id (sort keys %h) {
    my $r = mcp_finish($h{$id}, 10);
    my $j = $r->{json};
    push @bad, "$id: $r->{status} $r->{body}"
        unless $j && $j->{id} == $id && !$j->{error};
    $answers{$id}++ if $j && $j->{result};
    my ($srv, $held) = ($j->{result}{content}[0]{text} // '')
                       =~ /^done (s\d+) (\d+)$/;
    push @bad, "$id answered by " . ($srv // '?') . ", not $want{$id}"
        unless ($srv // '') eq $want{$id};
}
is_deeply(\@bad, [], 'every call answered with its own result');
is_deeply(\%answers, { map { $_ => 1 } keys %h }, '... exactly once');
note(sprintf 'FIGURE reload: %d calls in flight, %d answered once, '
     . '%d registered', scalar keys %h, scalar grep({ $_ == 1 } values %answers),
     scalar servers_of());
is_deeply([ map { scalar $_->received('tools/call') } @s ],
          [ (1) x 40, (0) x 60 ],
          'each server got its call once, the others none');
my %conn1 = map { $_->{name} => $_->{connection_id} } servers_of();
is_deeply(\%conn1, \%conn0, 'the registry: the same 100 connections');
my $r = mcp(session => $sid, servers => [ $s[99] ],
            msg => call_msg(1, 's100__echo', { text => 'new' }));
is($r->{json}{result}{content}[0]{text}, 'new',
   'a new call reaches a server the old worker keeps');
$_->disconnect for @s;
--- no_error_log
[crit]
[alert]



=== TEST 5: a reverse server that goes silent (half-open): no pong within reverse_mcp_ping_timeout closes it, its calls from both workers fail with -32003 at once, it leaves the registry; the other server stays
--- http_config eval
main::agent_conf()
--- config
location /ws {
    reverse_mcp_connector a1;
    reverse_mcp_ping_interval 1s;
    reverse_mcp_ping_timeout 1s;
}
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = slow(name => 's1');
my $owner = entry('s1')->{owner_pid};
my $s2 = slow(name => 's2');
my $e2 = entry('s2');
my $sid = session();
my @h = (mcp_start(worker => $owner, session => $sid, msg => call_msg(1, 's1__slow')),
         mcp_start(not_worker => $owner, session => $sid,
                   msg => call_msg(2, 's1__slow')));
ok($s1->pump_until(sub { @{ $s1->{held} } == 2 }, 5), 's1 holds two calls');
# from now on s1 reads nothing and answers nothing; s2 keeps answering
my @r;
my $t0 = Time::HiRes::time();
ok(wait_until(sub {
    $s2->pump(0.01);
    !grep { !mcp_poll($_, 0.01) } @h;
}, 6, 0), 'both calls end within ping interval + timeout');
note(sprintf 'FIGURE silent: both calls -32003 %.1f s after the server '
     . 'went silent (ping 1 s + timeout 1 s)', Time::HiRes::time() - $t0);
@r = map { parse_response($_->{buf}) } @h;
is_deeply([ map { $_->{json}{error}{code} } @r ], [ -32003, -32003 ],
          'both: -32003');
like($r[0]{json}{error}{message}, qr/disconnect|clos/i,
     "... $r[0]{json}{error}{message}");
ok(!entry('s1'), 's1 left the registry');
is(entry('s2')->{connection_id}, $e2->{connection_id}, 's2 stayed');
my $r = mcp(session => $sid, msg => call_msg(3, 's1__echo'));
is($r->{json}{error}{code}, -32001, 'a new call to s1: -32001');
$s2->disconnect;
--- error_log
server "s1" of agent "a1" sent no pong within 1000ms, closing
--- no_error_log
[crit]



=== TEST 6: a reverse server that stops reading: calls queue up to reverse_mcp_send_queue, then -32004 without closing the socket; once it reads again every accepted call is answered
--- http_config eval
main::agent_conf()
--- config
location /ws {
    reverse_mcp_connector a1;
    reverse_mcp_max_message 2m;
    reverse_mcp_send_queue 2m;
}
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; client_max_body_size 4m; }
--- test_code
my $s = slow(name => 's1');
my $e0 = entry('s1');
my $sid = session();
my $pad = 'x' x 1000000;
my (@accepted, $busy, $n);
for my $i (1 .. 40) {
    $n = $i;
    my $h = mcp_start(session => $sid,
                      msg => call_msg($i, 's1__slow', { text => $pad }));
    if (mcp_poll($h, 0.3, sub { $_[0] =~ /\r\n\r\n.*-32004/s })) {
        mcp_poll($h, 2);
        $busy = parse_response($h->{buf});
        last;
    }
    push @accepted, [ $i, $h ];
}
ok($busy, "call $n of 1 MB: refused while the server does not read "
   . '(the kernel buffers the first ones)');
note("FIGURE slow-reader: call $n of 1 MB refused with -32004 (send queue "
     . '2 MB), ' . scalar(@accepted) . ' queued calls answered later');
is($busy->{json}{error}{code}, -32004, '... -32004');
like($busy->{json}{error}{message}, qr/does not read its socket \(send queue full\)/,
     "... $busy->{json}{error}{message}");
my $e1 = entry('s1');
is($e1->{connection_id}, $e0->{connection_id}, 'the socket stays registered');

# it reads again: every accepted call arrives once and is answered
ok($s->pump_until(sub { @{ $s->{held} } == @accepted }, 10),
   scalar(@accepted) . ' accepted calls reach the server');
release($s);
my @bad = grep { my $r = mcp_finish($_->[1], 5);
                 ($r->{json}{result}{content}[0]{text} // '')
                     !~ /^done s1 \d+$/ } @accepted;
is(scalar @bad, 0, 'each accepted call is answered');
my $r = mcp(session => $sid, servers => [ $s ],
            msg => call_msg(99, 's1__echo', { text => 'ok' }));
is($r->{json}{result}{content}[0]{text}, 'ok', 'and new calls pass');
$s->disconnect;
--- no_error_log
[crit]



=== TEST 7: a server that floods notifications (20,000 log messages and progress for unknown tokens) does not starve calls to another server or its own; the gateway reads and drops them
--- http_config eval
main::agent_conf()
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = slow(name => 's1');
my $s2 = slow(name => 's2');
my $sid = session();
my $in0 = status_json()->{counters}{messages_in};
my $msg = '{"jsonrpc":"2.0","method":"notifications/message","params":'
        . '{"level":"debug","data":"' . ('f' x 200) . '"}}';
my $prog = '{"jsonrpc":"2.0","method":"notifications/progress","params":'
         . '{"progressToken":"nobody","progress":1}}';
my $sent = 0;
for my $i (1 .. 100) {
    $s1->send_text(join "\n", ($i % 2 ? $msg : $prog) x 200) or last;
    $sent += 200;
}
is($sent, 20000, '20,000 notifications sent by s1');
my $t0 = Time::HiRes::time();
my $r = mcp(session => $sid, servers => [ $s2 ],
            msg => call_msg(1, 's2__echo', { text => 'fair' }));
is($r->{json}{result}{content}[0]{text}, 'fair', 'a call to s2 meanwhile');
note(sprintf 'FIGURE flood: a call to another server answered in %.0f ms '
     . 'during a flood of 20,000 notifications',
     (Time::HiRes::time() - $t0) * 1000);
$r = mcp(session => $sid, servers => [ $s1 ],
         msg => call_msg(2, 's1__echo', { text => 'mine' }));
is($r->{json}{result}{content}[0]{text}, 'mine', "and one to s1 itself");
# s1's answer came after its flood on the same socket: all was read
ok(status_json()->{counters}{messages_in} >= $in0 + 100 + 2,
   'the gateway counted the 100 frames of the flood');
ok(entry('s1'), 's1 stays registered');
$_->disconnect for $s1, $s2;
--- no_error_log
[crit]
[error]



=== TEST 8: a caller that reads a 4 MB SSE reply slowly: other calls go on meanwhile; the reply arrives whole when it reads
--- http_config eval
main::agent_conf()
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $big = 'b' x (4 * 1024 * 1024);
my $s = up(name => 's1', tools => [ tool('echo'), tool('big') ],
           on_request => sub {
    my ($s, $m) = @_;
    return undef unless $m->{method} eq 'tools/call'
                        && $m->{params}{name} eq 'big';
    return { content => [ { type => 'text', text => $big } ] };
});
my $sid = session();
my $slow = mcp_start(session => $sid, servers => [ $s ],
                     msg => req(1, 'tools/call', { name => 's1__big',
                         arguments => {}, _meta => { progressToken => 'p' } }));
# let the server answer without reading the reply
ok($s->pump_until(sub { $s->received('tools/call') }, 5), 'the big call went out');
$s->pump(1);
for my $i (1 .. 3) {
    my $r = mcp(session => $sid, servers => [ $s ],
                msg => call_msg(10 + $i, 's1__echo', { text => "meanwhile $i" }));
    is($r->{json}{result}{content}[0]{text}, "meanwhile $i",
       "call $i meanwhile");
}
my $t0 = Time::HiRes::time();
my $r = mcp_finish($slow, 20);
note(sprintf 'FIGURE slow-caller: 3 calls answered while a 4 MB SSE reply '
     . 'waited; read in %.0f ms afterwards', (Time::HiRes::time() - $t0) * 1000);
is($r->{status}, 200, 'the slow reader gets 200');
like($r->{headers}{'content-type'}, qr{^text/event-stream}, '... as SSE');
is(length($r->{json}{result}{content}[0]{text} // ''), length $big,
   '... and the whole 4 MB result');
$s->disconnect;
--- no_error_log
[crit]
[error]



=== TEST 9: the owner's mailbox socket is missing: a call from the other worker gets -32004 at once and nothing hangs; calls from the owner work; with the socket back, calls cross again
--- http_config eval
main::agent_conf()
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s = up(name => 's1');
my $owner = entry('s1')->{owner_pid};
my $sock = "$ServRoot/reverse_mcp/mcp.$owner.sock";
ok(-S $sock, "the owner's mailbox socket exists");
ok(rename($sock, "$sock.away"), 'moved away');
my $sid = session();
my $t0 = Time::HiRes::time();
my $r = mcp(not_worker => $owner, session => $sid, servers => [ $s ],
            msg => call_msg(1, 's1__echo', { text => 'x' }));
note(sprintf 'FIGURE no-mailbox: -32004 in %.0f ms',
     (Time::HiRes::time() - $t0) * 1000);
is($r->{json}{error}{code}, -32004, 'a call from the other worker: -32004');
like($r->{json}{error}{message}, qr/busy, try again/,
     "... $r->{json}{error}{message}");
$r = mcp(worker => $owner, session => $sid, servers => [ $s ],
         msg => call_msg(2, 's1__echo', { text => 'local' }));
is($r->{json}{result}{content}[0]{text}, 'local', 'a call from the owner works');
ok(entry('s1'), 's1 stays registered');
ok(rename("$sock.away", $sock), 'the socket is back');
$r = mcp(not_worker => $owner, session => $sid, servers => [ $s ],
         msg => call_msg(3, 's1__echo', { text => 'again' }));
is($r->{json}{result}{content}[0]{text}, 'again', 'calls cross workers again');
$s->disconnect;
--- error_log eval
qr{\[crit\] .*connect\(\) to \S+/reverse_mcp/mcp\.\d+\.sock failed \(2: No such file or directory\)}
--- no_error_log
[alert]



=== TEST 10: binary upgrade (USR2, then QUIT of the old master): the new master has its own zone; the call in flight on an old worker is answered once; a server that reconnects registers with the new workers; the runtime dir holds both generations' mailboxes
--- http_config eval
main::agent_conf()
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
# a daemonized copy of the harness's nginx (see daemon_nginx)
my ($old, $port) = main::daemon_nginx("$ServRoot/upgrade");
my $P = sub { (port => $port, @_) };
my @old_workers = nginx_worker_pids(master => $old);
is(scalar @old_workers, 2, "nginx $old with 2 workers on port $port");
my $s = slow(name => 's1', port => $port);
my $j = status_json(undef, port => $port);
my ($owner) = map { $_->{owner_pid} } map { @{ $_->{servers} } }
              @{ $j->{agents} };
my $sid = session(port => $port);
# through the other worker: it has no timer of its own for the call
my $h = mcp_start($P->(not_worker => $owner, session => $sid,
                       msg => call_msg(1, 's1__slow')));
ok($s->pump_until(sub { @{ $s->{held} } == 1 }, 5),
   'a call in flight from the worker that does not own s1');

kill 'USR2', $old;
my $new;
ok(wait_until(sub {
    -s "$ServRoot/upgrade/logs/nginx.pid.oldbin" or return 0;
    ($new) = slurp("$ServRoot/upgrade/logs/nginx.pid") =~ /(\d+)/;
    $new && $new != $old && nginx_worker_pids(master => $new) == 2;
}, 10, 0.05), 'USR2: a new master with 2 workers');
push @main::Stray, $new;
my @new_workers = nginx_worker_pids(master => $new);
is_deeply([ sort { $a <=> $b } map { /mcp\.(\d+)\.sock$/ }
            glob "$ServRoot/upgrade/reverse_mcp/mcp.*.sock" ],
          [ sort { $a <=> $b } @old_workers, @new_workers ],
          'the runtime dir holds the mailboxes of all four workers');

kill 'QUIT', $old;
ok(wait_until(sub { !nginx_worker_pids(master => $old) }, 5, 0.05),
   'QUIT: the old workers stop accepting');
$j = status_json(undef, port => $port);
ok((grep { $_ == $j->{pid} } @new_workers),
   "the status page now comes from a new worker ($j->{pid})");
ok(!grep({ $_->{name} eq 's1' } map { @{ $_->{servers} } } @{ $j->{agents} }),
   "the new master's zone does not list s1 (its socket is on an old worker)");
my $sid2 = session(port => $port);
my $r = mcp($P->(session => $sid2, msg => call_msg(2, 's1__echo')));
is($r->{json}{error}{code}, -32001,
   'a call through the new workers: -32001 until s1 reconnects');
$r = mcp($P->(session => $sid, msg => req(3, 'ping')));
is($r->{status}, 404, "the old zone's session is unknown to the new workers");

my $held = $s->{held}[0];
release($s);
$r = mcp_finish($h, 5);
is($r->{json}{result}{content}[0]{text}, "done s1 $held",
   'the call in flight on the old worker is answered');
$s->close(1000, 'reconnect');
$s->pump(0.5);
$s->disconnect;
ok(wait_until(sub { main::gone($old) }, 10, 0.05),
   'the old master exits once its workers are done');

my $s2 = slow(name => 's1', port => $port);
$j = status_json(undef, port => $port);
my ($e) = grep { $_->{name} eq 's1' } map { @{ $_->{servers} } }
          @{ $j->{agents} };
ok($e && (grep { $_ == $e->{owner_pid} } @new_workers),
   's1 reconnected and registered with a new worker');
$r = mcp($P->(session => $sid2, servers => [ $s2 ],
              msg => call_msg(4, 's1__echo', { text => 'upgraded' })));
is($r->{json}{result}{content}[0]{text}, 'upgraded', 'calls work again');
note('FIGURE upgrade: the call in flight answered once by the old worker, '
     . 's1 registered with new worker ' . $e->{owner_pid});
$s2->disconnect;

kill 'QUIT', $new;
ok(wait_until(sub { main::gone($new) }, 10, 0.05), 'the new master stops');
my @bad = grep { /\[(alert|crit|emerg)\]/ }
          split /\n/, slurp("$ServRoot/upgrade/logs/error.log");
is_deeply(\@bad, [], 'no alert, crit or emerg in its error log');
--- no_error_log
[crit]
[alert]
