# Multi-worker behaviour of the shared registry: servers owned by different
# workers, duplicate names across workers, reload (keep / close), a worker
# killed with SIGKILL, connection churn, a full zone, agent tool limits and
# the status page's ?agent= filter.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::ReverseMCP;
use Time::HiRes ();
use Cpanel::JSON::XS ();

master_on();
workers(2);

run_tests();

# ------------------------------------------------------------------------
# helpers (test_code runs in package main)
# ------------------------------------------------------------------------

# http_config: the zone and agent "a1" with servers s1..sN and names
# (token "t")
sub agent_conf {
    my (%o) = @_;
    my $n = $o{servers} // 40;
    my $conf = "reverse_mcp_zone " . ($o{zone} // 'rmcp:1m') . ";\n"
             . "reverse_mcp_agent a1 {\n";
    $conf .= "    server $o{prefix}$_ token=t;\n" for 1 .. $n;
    $conf .= "    server $_ token=t;\n" for @{ $o{names} || [] };
    $conf .= "    $o{extra}\n" if $o{extra};
    return $conf . "}\n" . ($o{more} // '');
}

sub tool {
    my ($name, $desc) = @_;
    return { name => $name, description => $desc // "tool $name",
             inputSchema => { type => 'object' } };
}

sub srv {
    my (%o) = @_;
    return Test::Nginx::ReverseMCP->new(port => $ServerPort, token => 't',
                                        tools => [ tool('echo') ], %o);
}

# connected and handshaken, or die
sub up {
    my (%o) = @_;
    my $s = srv(%o);
    my $st = $s->connect;
    die "$o{name}: handshake status $st (" . ($s->ws->error // '') . ")\n"
        unless $st == 101;
    die "$o{name}: MCP handshake did not complete"
        . ($s->{closed} ? " (closed: " . ($s->{close_code} // 'eof') . ")"
                        : '') . "\n"
        unless $s->handshake(5);
    return $s;
}

# like up(), on the worker $pid: each try first sends GET /status on the
# same keep-alive connection, whose "pid" tells the worker that holds it
sub up_on {
    my ($pid, %o) = @_;
    for my $try (1 .. 40) {
        my $s = srv(%o, ws_opts => { pre_request =>
            "GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n" });
        my $st = $s->connect;
        my $pre = $s->ws->{pre_response}
            or die "$o{name}: no answer to GET /status: "
                   . ($s->ws->error // '') . "\n";
        my $j = Cpanel::JSON::XS->new->decode($pre->{body});
        if ($j->{pid} != $pid) {
            $s->disconnect;
            next;
        }
        die "$o{name}: handshake status $st\n" unless $st == 101;
        die "$o{name}: MCP handshake did not complete\n"
            unless $s->handshake(5);
        return $s;
    }
    die "$o{name}: no connection landed on worker $pid in 40 tries\n";
}

sub agent_of {
    my ($j, $agent) = @_;
    my ($a) = grep { $_->{name} eq ($agent // 'a1') } @{ $j->{agents} };
    return $a;
}

sub servers_of {
    my ($j, $agent) = @_;
    my $a = agent_of($j, $agent) or return ();
    return @{ $a->{servers} };
}

sub entry {
    my ($name, $j, $agent) = @_;
    $j //= status_json();
    my ($e) = grep { $_->{name} eq $name } servers_of($j, $agent);
    return $e;
}

# the registry entry of $name once it is there (dies after 3 s)
sub wait_entry {
    my ($name, $agent) = @_;
    my $e;
    wait_until(sub { $e = entry($name, undef, $agent) }, 3, 0.02)
        or die "server $name is not registered after 3 s\n";
    return $e;
}

# Connects servers "${prefix}1", "${prefix}2", ... until every active
# worker owns at least one (the kernel spreads connections; after $max
# tries up_on() picks the missing workers); each server gets {owner} and
# {conn_id} from the registry.  The agent needs $max + 2 names.
sub spread {
    my (%o) = @_;
    my $prefix = delete $o{prefix} // 's';
    my $max = delete $o{max} // 20;
    my @pids = nginx_worker_pids();
    my (@s, %seen);
    for my $i (1 .. $max) {
        my $s = up(name => "$prefix$i", %o);
        my $e = wait_entry("$prefix$i");
        @$s{qw(owner conn_id)} = @$e{qw(owner_pid connection_id)};
        $seen{ $e->{owner_pid} }++;
        push @s, $s;
        return @s if @pids == grep { $seen{$_} } @pids;
    }
    # the kernel kept choosing the same worker: ask for the others
    my $i = $max;
    for my $pid (grep { !$seen{$_} } @pids) {
        $i++;
        my $s = up_on($pid, name => "$prefix$i", %o);
        my $e = wait_entry("$prefix$i");
        @$s{qw(owner conn_id)} = @$e{qw(owner_pid connection_id)};
        push @s, $s;
    }
    return @s;
}

# answers whatever arrives (pings included) on every open server
sub pump_all {
    my ($secs, @s) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    while (Time::HiRes::time() < $deadline) {
        my @open = grep { !$_->{closed} } @s or return;
        $_->pump(0.02) for @open;
    }
}

sub close_all {
    for my $s (@_) {
        next if $s->{closed} || !$s->ws;
        $s->close(1000, 'bye');
        $s->disconnect;
    }
}

# waits for a close frame on $s (pings answered); returns (code, reason)
sub wait_close {
    my ($s, $timeout) = @_;
    return ($s->{close_code}, $s->{close_reason}) if $s->{closed};
    my @r = $s->ws->recv_close($timeout);
    $s->{closed} = 1 if @r;
    @$s{qw(close_code close_reason)} = @r if @r;
    return @r;
}

# The worker we SIGKILL makes the master log "worker process PID exited on
# signal 9"; the harness accepts that line for this pid only.
sub forget_expected_kill {
    my ($pid) = @_;
    expect_worker_kill($pid);
    my $line = qr/ $pid exited on signal 9\b/;
    my $found = wait_until(sub { error_log_since_start() =~ $line }, 3, 0.05);
    ok($found, "master logged: worker process $pid exited on signal 9");
}

__DATA__

=== TEST 1: servers connected to each worker share one registry
--- http_config eval
main::agent_conf(prefix => 's')
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my @pids = nginx_worker_pids();
is(scalar @pids, 2, 'two workers');
my @s = spread();
my %expect = map { $_->{name} => [ $_->{conn_id}, $_->{owner} ] } @s;
my %owners = map { $_->{owner} => 1 } @s;
is_deeply([ sort { $a <=> $b } keys %owners ], \@pids,
          'the servers are owned by both workers (' . @s . ' servers)');

# every worker renders the same registry
my %seen_from;
wait_until(sub {
    my $j = status_json();
    my %got = map { $_->{name} => [ $_->{connection_id}, $_->{owner_pid} ] }
              servers_of($j);
    $seen_from{ $j->{pid} } //= \%got;
    return 2 == grep { $seen_from{$_} } @pids;
}, 5, 0.01);
for my $pid (@pids) {
    ok($seen_from{$pid}, "status served by worker $pid")
        && is_deeply($seen_from{$pid}, \%expect,
                     "worker $pid shows every server with its owner pid");
}
my $j = status_json();
is(agent_of($j)->{servers_count}, scalar @s, 'servers_count');
is(agent_of($j)->{tools_count}, scalar @s, 'tools_count (one tool each)');
is($j->{counters}{connections}, scalar @s, 'connections counter');
is_deeply([ sort { $a <=> $b } map { $_->{pid} } @{ $j->{workers} } ],
          \@pids, 'the workers list of the status page');
my @other = grep { $_->{owner} != $j->{pid} } @s;
ok(@other, "the status page (pid $j->{pid}) lists servers owned by "
           . 'the other worker');
close_all(@s);
ok(wait_until(sub { !servers_of(status_json()) }, 3),
   'every server unregistered after closing');
--- no_error_log
[alert]
[crit]



=== TEST 2: duplicate name, replace policy, within and across workers
--- http_config eval
main::agent_conf(prefix => 's', names => ['dup'])
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
# "dup" is replaced twice: by a connection on the same worker, then by one
# on the other worker
my @pids = nginx_worker_pids();
my $old = up(name => 'dup', close_reply => 0);
my $e = wait_entry('dup');
@$old{qw(conn_id owner)} = @$e{qw(connection_id owner_pid)};
my ($other) = grep { $_ != $old->{owner} } @pids;
my @old_ids;
my $step = 0;
for my $case (['same worker', $old->{owner}], ['across workers', $other]) {
    my ($where, $pid) = @$case;
    $step++;
    my $new = up_on($pid, name => 'dup', close_reply => 0);
    my $t0 = Time::HiRes::time();
    my ($code, $reason) = wait_close($old, 2);
    my $dt = Time::HiRes::time() - $t0;
    is($code, 1008, "$where: the old connection (worker $old->{owner}) "
                    . "gets 1008");
    is($reason, 'replaced by a newer connection', "$where: close reason");
    cmp_ok($dt, '<', 1, "$where: closed within 1 s");
    my $j = status_json();
    my @dups = grep { $_->{name} eq 'dup' } servers_of($j);
    is(scalar @dups, 1, "$where: one registry entry for dup");
    isnt($dups[0]{connection_id}, $old->{conn_id},
         "$where: it is the new connection's");
    is($dups[0]{owner_pid}, $pid, "$where: owned by worker $pid");
    is($j->{counters}{replaced}, $step, "$where: replaced counter $step");
    is(agent_of($j)->{servers_count}, 1, "$where: servers_count 1");
    @$new{qw(conn_id owner)} = @{ $dups[0] }{qw(connection_id owner_pid)};

    # the old connection finishes its close later: the new entry stays
    Time::HiRes::sleep(0.3);
    $old->close(1000, 'late');
    ok($old->ws->is_eof(3), "$where: the old connection is closed");
    Time::HiRes::sleep(0.3);
    my $after = entry('dup');
    is($after && $after->{connection_id}, $new->{conn_id},
       "$where: the new entry survives the old connection's close");
    push @old_ids, $old->{conn_id};
    $old->disconnect;
    $old = $new;
}
my $log = error_log_since_start();
for my $id (@old_ids) {
    unlike($log, qr/unregistered \(connection $id\)/,
           "the replaced connection $id never deleted an entry");
}
like($log, qr/closing server "dup" of agent "a1" with 1008: replaced by a newer connection/,
     'the replacement is logged');
$old->close(1000, 'bye');
ok(wait_until(sub { !entry('dup') }, 3), 'dup unregistered at the end');
like(error_log_since_start(),
     qr/server "dup" of agent "a1" unregistered \(connection $old->{conn_id}\)/,
     'the last connection deleted its own entry');
--- no_error_log
[alert]
[crit]



=== TEST 3: reload keeps connected servers registered in the old workers
--- http_config eval
main::agent_conf(prefix => 's', names => ['fresh'])
--- config
location /ws {
    reverse_mcp_connector a1;
    reverse_mcp_ping_interval 1s;
    reverse_mcp_ping_timeout 5s;
}
location = /status { reverse_mcp_status; }
--- test_code
my @old_pids = nginx_worker_pids();
my @s = spread();
my $j0 = status_json();
my %before = map { $_->{name} => [ $_->{connection_id}, $_->{owner_pid} ] }
             servers_of($j0);
is(scalar keys %before, scalar @s, 'all servers registered before reload');

ok(nginx_reload(), 'reload: a new set of workers runs');
my $t_reload = Time::HiRes::time();
my %pings = map { $_->{name} => scalar @{ $_->ws->{pings} } } @s;
my @new_pids = nginx_worker_pids();
is(scalar(grep { my $p = $_; grep { $_ == $p } @old_pids } @new_pids), 0,
   'the new workers are other processes');

pump_all(0.3, @s);
my $j = status_json();
is($j->{zone}{generation}, $j0->{zone}{generation} + 1,
   'the zone generation grew by 1');
my %after = map { $_->{name} => [ $_->{connection_id}, $_->{owner_pid} ] }
            servers_of($j);
is_deeply(\%after, \%before,
          'same servers, same connection ids, same owner pids');
for my $pid (keys %{{ map { $_->[1] => 1 } values %after }}) {
    ok((grep { $_ == $pid } @old_pids) && kill(0, $pid),
       "owner $pid is an old worker, still running");
}

# a newcomer goes to a new worker
my $n = up(name => 'fresh');
my $e = wait_entry('fresh');
ok((grep { $_ == $e->{owner_pid} } @new_pids),
   "the new server is owned by a new worker ($e->{owner_pid})");

# the old sockets are still served: gateway pings keep coming
pump_all(2.5, @s, $n);
for my $s (@s) {
    cmp_ok(scalar @{ $s->ws->{pings} }, '>', $pings{ $s->{name} },
           "$s->{name} (old worker $s->{owner}) got a ping after the reload");
    ok(!$s->{closed}, "$s->{name} still connected");
}
cmp_ok(scalar @{ $n->ws->{pings} }, '>', 0,
       'the newcomer (new worker) got a ping too');
$j = status_json();
is(scalar(servers_of($j)), @s + 1, 'old servers and the newcomer registered');
is(entry('s1', $j)->{connection_id}, $before{s1}[0], 's1 unchanged');

# and they are still MCP-served by their old worker: a re-list works
my $s1 = $s[0];
my $lists = $s1->{tools_list_count};
$s1->set_tools([ tool('echo'), tool('after_reload') ]);
$s1->notify('notifications/tools/list_changed');
ok($s1->pump_until(sub { $s1->{tools_list_count} > $lists }, 3),
   's1 re-listed by its old worker after list_changed');
my $e1;
ok(wait_until(sub { $e1 = entry('s1'); @{ $e1->{tools} } == 2 }, 3),
   's1 now has 2 tools');
is_deeply([ map { $_->{name} } @{ $e1->{tools} } ], [ 'after_reload', 'echo' ],
          "s1's new tool list");
is_deeply([ @$e1{qw(connection_id owner_pid relists)} ],
          [ @{ $before{s1} }, 1 ], 's1: same connection and owner, relists 1');

close_all(@s, $n);
ok(wait_until(sub { !servers_of(status_json()) }, 3),
   'all unregistered after they leave');
ok(wait_until(sub { !grep { kill 0, $_ } @old_pids }, 5),
   'the old workers exit once their servers left');
--- no_error_log
[alert]
[crit]
closing server



=== TEST 4: reverse_mcp_shutdown close: reload closes old sockets with 1001
--- http_config eval
main::agent_conf(prefix => 's')
--- config
location /ws {
    reverse_mcp_connector a1;
    reverse_mcp_shutdown close;
}
location = /status { reverse_mcp_status; }
--- test_code
my @old_pids = nginx_worker_pids();
my @s = spread();
my %ids = map { $_->{name} => $_->{conn_id} } @s;
ok(nginx_reload(), 'reload');
for my $s (@s) {
    my ($code, $reason) = wait_close($s, 3);
    is($code, 1001, "$s->{name} (worker $s->{owner}) closed with 1001");
    is($reason, 'gateway shutting down, reconnect', "$s->{name}: reason");
}
ok(wait_until(sub {
    my $j = status_json();
    !grep { $ids{ $_->{name} } } servers_of($j);
}, 3), 'the old servers are unregistered');
my $log = error_log_since_start();
for my $s (@s) {
    like($log, qr/server "$s->{name}" of agent "a1" unregistered \(connection $s->{conn_id}\)/,
         "$s->{name} unregistered (log)");
}
ok(wait_until(sub { !grep { kill 0, $_ } @old_pids }, 5),
   'the old workers exit');

# reconnect: the new workers take them
my @r = map { up(name => $_->{name}) } @s;
my $j;
ok(wait_until(sub { $j = status_json(); servers_of($j) == @s }, 3),
   'the servers registered again');
my @new_pids = nginx_worker_pids();
for my $e (servers_of($j)) {
    ok((grep { $_ == $e->{owner_pid} } @new_pids)
       && $e->{connection_id} != $ids{ $e->{name} },
       "$e->{name} re-registered in a new worker");
}
close_all(@r);
--- no_error_log
[alert]
[crit]



=== TEST 5: kill -9 of a worker purges its servers only
--- http_config eval
main::agent_conf(prefix => 's', names => ['n1'])
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my @s = spread();
my $j0 = status_json();
my $victim = $s[-1]{owner};              # owns at least the last server
my @dead = grep { $_->{owner} == $victim } @s;
my @live = grep { $_->{owner} != $victim } @s;
ok(@dead && @live, scalar(@dead) . " server(s) on the victim $victim, "
                   . scalar(@live) . ' on the other worker');

kill 'KILL', $victim;
my $t0 = Time::HiRes::time();
my $j;
ok(wait_until(sub {
    $j = eval { status_json() } or return 0;
    !grep { $_->{owner_pid} == $victim } servers_of($j);
}, 2, 0.02), "the victim's servers are purged within 2 s");
note(sprintf 'purged after %.2f s', Time::HiRes::time() - $t0);
my %now = map { $_->{name} => [ $_->{connection_id}, $_->{owner_pid} ] }
          servers_of($j);
is_deeply(\%now,
          { map { $_->{name} => [ $_->{conn_id}, $_->{owner} ] } @live },
          "the other worker's servers are untouched");
is($j->{counters}{purged}, $j0->{counters}{purged} + @dead,
   'the purged counter grew by the number of purged servers');
my $n = @dead;
ok(wait_until(sub {
    error_log_since_start()
        =~ /\[warn\] \d+#\d+: reverse_mcp: purged $n server\(s\) of dead worker $victim\b/
}, 2), "log: purged $n server(s) of dead worker $victim");
for my $s (@dead) {
    ok($s->ws->is_eof(2), "$s->{name}: its socket is gone");
}
forget_expected_kill($victim);

# the respawned worker accepts servers
my $respawned;
ok(wait_until(sub {
    my @p = nginx_worker_pids();
    ($respawned) = grep { my $p = $_; !grep { $_->{owner} == $p } @s } @p;
    @p == 2 && !grep { $_ == $victim } @p;
}, 3), 'the master respawned the worker');
my $fresh = up_on($respawned, name => 'n1');
is(wait_entry('n1')->{owner_pid}, $respawned,
   "a new server registered in the respawned worker $respawned");
is(servers_of(status_json()), @live + 1, 'registry: survivors + new');
close_all(@live, $fresh);
ok(wait_until(sub { !servers_of(status_json()) }, 3), 'all gone at the end');
--- no_error_log
[crit]



=== TEST 6: 200 servers connect and leave 4 times: the zone does not leak
--- http_config eval
main::agent_conf(prefix => 's', servers => 200, extra => 'max_servers 256;')
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code_timeout: 50
--- test_code
my $tools = [ tool('echo', 'Echo the text'), tool('add', 'x' x 300) ];
my ($warm, $j);
for my $round (0 .. 3) {
    my @s;
    for my $i (1 .. 200) {
        my $s = srv(name => "s$i", tools => $tools, timeout => 5);
        $s->connect == 101 or die "round $round: s$i not upgraded\n";
        push @s, $s;
    }
    for my $s (@s) {
        $s->handshake(5) or die "round $round: $s->{name} handshake failed\n";
    }
    ok(wait_until(sub {
        $j = status_json();
        agent_of($j)->{servers_count} == 200;
    }, 5), "round $round: 200 servers registered");
    my %owners = map { $_->{owner_pid} => 1 } servers_of($j);
    note("round $round: owners " . join(' ', sort keys %owners));
    is(agent_of($j)->{tools_count}, 400, "round $round: 400 tools");
    is($j->{counters}{connections}, 200, "round $round: 200 connections");

    # leave in three ways: close handshake, TCP close, TCP reset
    for my $i (0 .. $#s) {
        if ($i % 3 == 0) {
            $s[$i]->close(1000, 'bye');
        } elsif ($i % 3 == 1) {
            $s[$i]->disconnect;
        } else {
            $s[$i]->disconnect(1);
        }
    }
    ok(wait_until(sub {
        $j = status_json();
        agent_of($j)->{servers_count} == 0 && $j->{counters}{connections} == 0;
    }, 5), "round $round: nothing registered, connections counter 0")
        or diag(explain($j->{counters}));
    is(scalar(servers_of($j)), 0, "round $round: empty server list");
    $_->disconnect for @s;
    if ($round == 0) {
        $warm = $j->{zone}{pages_free};
        note("pages_free after the warm-up round: $warm of "
             . $j->{zone}{pages_total});
    } else {
        is($j->{zone}{pages_free}, $warm,
           "round $round: pages_free back to the warm-up value");
    }
}
is($j->{counters}{registrations}, 800, '800 registrations');
is($j->{counters}{deregistrations}, 800, '800 deregistrations');
--- no_error_log
[alert]
[crit]
[error]



=== TEST 7: a full zone refuses the newcomer with 1013, keeps the others
--- http_config eval
main::agent_conf(prefix => 's', zone => 'z:256k')
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $big = sub {
    [ map { tool("t$_", ("$_" x 20480)) } 1 .. 2 ];     # 2 x 20 KB
};
my (@reg, $refused);
for my $i (1 .. 12) {
    my $s = srv(name => "s$i", tools => $big->());
    is($s->connect, 101, "s$i upgraded");
    $s->handshake(5) or die "s$i: no tools/list\n";
    my $deadline = Time::HiRes::time() + 3;
    my $e;
    until ($s->{closed} || ($e = entry("s$i"))
           || Time::HiRes::time() > $deadline)
    {
        $s->pump(0.05);
    }
    if ($e) {
        $s->{conn_id} = $e->{connection_id};
        push @reg, $s;
        next;
    }
    $refused = $s;
    last;
}
ok(@reg >= 2, scalar(@reg) . ' servers registered before the zone is full');
ok($refused, 'a newcomer was refused') or die "the zone never filled up\n";
my $name = $refused->{name};
my ($code, $reason) = wait_close($refused, 2);
is($code, 1013, "$name: close 1013");
is($reason, 'registry zone is full', "$name: close reason");
like(error_log_since_start(),
     qr/\[error\] \d+#\d+: \*\d+ reverse_mcp: zone "z" is full: cannot register server "$name" of agent "a1" \(\d+ bytes, 2 tools\)/,
     'error log names the zone, the server and the size');
my $j = status_json();
is_deeply({ map { $_->{name} => $_->{connection_id} } servers_of($j) },
          { map { $_->{name} => $_->{conn_id} } @reg },
          'every server registered before is still there');
is($j->{counters}{registrations_refused}, 1, 'registrations_refused 1');
is($j->{zone}{size}, 262144, 'zone size 256k');
$refused->disconnect;

# one leaves: the newcomer fits again
my $gone = shift @reg;
$gone->close(1000, 'bye');
ok(wait_until(sub { !entry($gone->{name}) }, 3), "$gone->{name} left");
my $again = up(name => $name, tools => $big->());
ok(wait_until(sub { entry($name) }, 3), "$name registers after a server left");
$j = status_json();
is(scalar(servers_of($j)), @reg + 1, 'registry: the others + the newcomer');
close_all(@reg, $again, $gone);
--- no_error_log
[alert]
[crit]



=== TEST 8: max_tools 5: a server with 6 tools, then 3 + 3 tools
--- http_config eval
main::agent_conf(prefix => 's', extra => 'max_tools 5;')
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $tools = sub { my ($p, $n) = @_; [ map { tool("$p$_") } 1 .. $n ] };

my $six = srv(name => 's1', tools => $tools->('a', 6));
is($six->connect, 101, 's1 upgraded');
$six->pump_until(sub { 0 }, 3);
is($six->{close_code}, 1008, 's1 (6 tools): close 1008');
is($six->{close_reason}, 'agent tool limit reached', 's1: reason');
my $j = status_json();
is(scalar(servers_of($j)), 0, 'nothing registered');
is(agent_of($j)->{tools_count}, 0, 'no tools');
is(agent_of($j)->{max_tools}, 5, 'max_tools 5 shown');

my $a = up(name => 's2', tools => $tools->('b', 3));
wait_entry('s2');
my $b = srv(name => 's3', tools => $tools->('c', 3));
is($b->connect, 101, 's3 upgraded');
$b->pump_until(sub { 0 }, 3);
is($b->{close_code}, 1008, 's3 (3 more tools): close 1008');
is($b->{close_reason}, 'agent tool limit reached', 's3: reason');
$j = status_json();
is_deeply([ map { $_->{name} } servers_of($j) ], ['s2'], 'only s2 registered');
is(agent_of($j)->{tools_count}, 3, '3 tools');
is_deeply([ map { $_->{name} } @{ entry('s2', $j)->{tools} } ],
          [ 'b1', 'b2', 'b3' ], "s2's tools");
close_all($a);
--- error_log
closing server "s1" of agent "a1" with 1008: agent tool limit reached
closing server "s3" of agent "a1" with 1008: agent tool limit reached
--- no_error_log
[alert]
[crit]



=== TEST 9: status ?agent= filter
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
reverse_mcp_agent a2 { server s2 token=t; server s3 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location /ws2 { reverse_mcp_connector a2; }
location = /status { reverse_mcp_status; }
--- test_code
my @s = (up(name => 's1'), up(name => 's2', path => '/ws2'),
         up(name => 's3', path => '/ws2'));
wait_entry('s1', 'a1'); wait_entry('s2', 'a2'); wait_entry('s3', 'a2');

my $r = http_get('/status?agent=nope');
is($r->{status}, 404, 'unknown agent: 404');
for (1 .. 4) {          # both workers answer alike
    my $j = status_json('/status?agent=a2');
    is_deeply([ map { $_->{name} } @{ $j->{agents} } ], ['a2'],
              "?agent=a2 (worker $j->{pid}): only a2");
    is_deeply([ map { $_->{name} } servers_of($j, 'a2') ], [ 's2', 's3' ],
              '?agent=a2: its servers');
}
my $j = status_json('/status?agent=a1');
is_deeply([ map { $_->{name} } @{ $j->{agents} } ], ['a1'], '?agent=a1: only a1');
is_deeply([ map { $_->{name} } servers_of($j, 'a1') ], ['s1'], '?agent=a1: s1');
$j = status_json();
is_deeply([ map { $_->{name} } @{ $j->{agents} } ], [ 'a1', 'a2' ],
          'no filter: both agents');
close_all(@s);
--- error_log
reverse_mcp: status for unknown agent "nope"
--- no_error_log
[alert]
[crit]



=== TEST 10: worker_shutdown_timeout: a draining worker says goodbye with 1001
--- main_config
worker_shutdown_timeout 1s;
--- http_config eval
main::agent_conf(prefix => 's')
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my @old_pids = nginx_worker_pids();
my @s = spread();
ok(nginx_reload(), 'reload (the default "keep": old workers keep the sockets)');
for my $s (@s) {
    my ($code, $reason) = wait_close($s, 4);
    is($code, 1001, "$s->{name} (worker $s->{owner}) got 1001 at the timeout");
    is($reason, 'gateway shutting down', "$s->{name}: reason");
}
ok(wait_until(sub { !grep { kill 0, $_ } @old_pids }, 5),
   'the old workers exit');
is(scalar(servers_of(status_json())), 0, 'nothing left registered');
