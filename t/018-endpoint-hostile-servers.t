# Reverse servers that misbehave while agents call them through the
# endpoint: an answer that is not JSON, an answer with an id nobody asked
# for, the same answer twice, no answer at all, a result larger than
# reverse_mcp_max_message.  For each: what the caller gets (a clear
# JSON-RPC error, at once when the socket is gone, at the timeout when it
# is not), what the server gets (notifications/cancelled, a close code),
# and that the registry and the other servers are intact: the next calls
# work.  A thousand calls in flight on one socket at once, held by both
# workers, each answered to its own caller.  kill -9 of the worker that
# owns the socket fails the calls the other worker holds at once.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::MCP;
use Time::HiRes ();
use IO::Socket::INET ();

master_on();
workers(2);

run_tests();

# an echo call of server $srv from caller id $id
sub echo_call {
    my ($sid, $id, $srv, $text, @servers) = @_;
    return mcp(session => $sid, servers => [@servers],
               msg => req($id, 'tools/call',
                          { name => "${srv}__echo",
                            arguments => { text => $text } }));
}

# A connection to the worker that is not $avoid (or to $want): asks
# /pid on a keep-alive connection until the right worker answers, then
# sends the call on it; a handle for mcp_finish()
sub call_on_worker {
    my ($want, $avoid, $sid, $msg) = @_;
    for my $try (1 .. 200) {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                         PeerPort => $ServerPort,
                                         Timeout => 5) or die "connect: $!\n";
        print $sock "GET /pid HTTP/1.1\r\nHost: localhost\r\n\r\n";
        my $buf = '';
        while ($buf !~ /\r\n\r\n\d+$/) {
            sysread($sock, $buf, 4096, length $buf) or last;
        }
        my ($pid) = $buf =~ /\r\n\r\n(\d+)$/;
        if (defined $pid && (defined $want ? $pid == $want : $pid != $avoid)) {
            my $body = $J->encode($msg);
            print $sock "POST /mcp HTTP/1.1\r\nHost: localhost\r\n"
                . "Content-Type: application/json\r\n"
                . "Accept: application/json, text/event-stream\r\n"
                . "Mcp-Session-Id: $sid\r\n"
                . 'Content-Length: ' . length($body) . "\r\n"
                . "Connection: close\r\n\r\n$body";
            $sock->blocking(0);
            return { sock => $sock, buf => '', eof => 0, servers => [],
                     pid => $pid };
        }
        close $sock;
    }
    die "no connection reached the wanted worker in 200 tries\n";
}

sub registered {
    my ($name) = @_;
    return entry($name) ? 1 : 0;
}

__DATA__

=== TEST 1: an answer that is not JSON: close 1007, the call fails at once with -32003, the others work
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_call_timeout 30s;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $bad = up(name => 's1', tools => [ tool('echo'), tool('garbage') ],
             on_request => sub {
    my ($s, $msg) = @_;
    return { raw => '{"jsonrpc":"2.0","id":' . $msg->{id} . ',"result":{' }
        if $msg->{method} eq 'tools/call'
           && $msg->{params}{name} eq 'garbage';
    return undef;
});
my $good = up(name => 's2');
my $sid = session();

my $t0 = Time::HiRes::time();
my $r = mcp(session => $sid, servers => [ $bad, $good ],
            msg => req(1, 'tools/call', { name => 's1__garbage' }));
my $took = Time::HiRes::time() - $t0;
is($r->{status}, 200, 'garbage: HTTP 200 (a JSON-RPC error)');
is($r->{json}{id}, 1, 'garbage: the caller\'s id');
is($r->{json}{error}{code}, -32003, 'garbage: -32003 (the socket is gone)');
like($r->{json}{error}{message}, qr/s1/, 'garbage: the message names s1');
ok($took < 10, sprintf 'garbage: failed at once, not at the 30 s timeout '
                       . '(%.2f s)', $took);
is($bad->{close_code}, 1007, 'the server was closed with 1007 (invalid JSON)');
ok(wait_until(sub { !registered('s1') }, 3, 0.02), 's1 left the registry');
ok(registered('s2'), 's2 is still registered');

$r = echo_call($sid, 2, 's2', 'still here', $good);
is($r->{json}{result}{content}[0]{text}, 'still here', 's2 still answers');

# s1 comes back and works
my $again = up(name => 's1');
$r = echo_call($sid, 3, 's1', 'back', $again);
is($r->{json}{result}{content}[0]{text}, 'back', 's1 reconnected and answers');
--- error_log eval
qr/\[warn\] .*closing server "s1" of agent "a1" with 1007: invalid JSON/
--- no_error_log
[alert]
[crit]



=== TEST 2: an answer with an id nobody asked for is dropped; the call times out with -32002 and the server gets notifications/cancelled
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_call_timeout 1s;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = up(name => 's1', tools => [ tool('echo'), tool('wrong_id') ],
            on_request => sub {
    my ($s, $msg) = @_;
    return { raw => $J->encode({ jsonrpc => '2.0', id => 'nobody-asked',
                                 result => { content => [] } }) }
        if $msg->{method} eq 'tools/call'
           && $msg->{params}{name} eq 'wrong_id';
    return undef;
});
my $sid = session();

my $r = mcp(session => $sid, servers => [ $s1 ],
            msg => req(7, 'tools/call', { name => 's1__wrong_id' }));
is($r->{json}{id}, 7, 'wrong id: the caller\'s id');
is($r->{json}{error}{code}, -32002, 'wrong id: the call timed out (-32002)');
like($r->{json}{error}{message}, qr/s1/, 'the timeout names the server');
ok($s1->pump_until(sub { $s1->received('notifications/cancelled') }, 3),
   'the server got notifications/cancelled');
my ($c) = $s1->received('notifications/cancelled');
my ($call) = grep { $_->{params}{name} eq 'wrong_id' }
             $s1->received('tools/call');
is($c->{params}{requestId}, $call->{id},
   'cancelled names the request the server was sent');
ok(!$s1->{closed}, 'the socket stays open');

$r = echo_call($sid, 8, 's1', 'fine', $s1);
is($r->{json}{result}{content}[0]{text}, 'fine', 'the next call works');
--- error_log eval
qr/\[warn\] .*server "s1" answered a request the gateway did not send \(or no longer waits for\), ignored/
--- no_error_log
[alert]
[crit]



=== TEST 3: the same answer twice: the caller gets it once, the second is dropped; no answer at all: -32002 at the timeout
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_call_timeout 1s;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = up(name => 's1', tools => [ tool('echo'), tool('twice'),
                                     tool('never') ],
            on_request => sub {
    my ($s, $msg) = @_;
    return undef unless $msg->{method} eq 'tools/call';
    my $n = $msg->{params}{name};
    if ($n eq 'twice') {
        my $a = $J->encode({ jsonrpc => '2.0', id => $msg->{id}, result => {
            content => [ { type => 'text', text => 'once' } ] } });
        $s->send_text($a);
        return { raw => $a };
    }
    return { noreply => 1 } if $n eq 'never';
    return undef;
});
my $sid = session();

my $r = mcp(session => $sid, servers => [ $s1 ],
            msg => req(1, 'tools/call', { name => 's1__twice' }));
is_deeply($r->{json}, { jsonrpc => '2.0', id => 1, result => {
    content => [ { type => 'text', text => 'once' } ] } },
    'twice: the caller gets the answer once');
is(scalar @{ $r->{events} || [ 1 ] }, 1, 'twice: one message in the reply');

my $t0 = Time::HiRes::time();
$r = mcp(session => $sid, servers => [ $s1 ],
         msg => req(2, 'tools/call', { name => 's1__never' }));
my $took = Time::HiRes::time() - $t0;
is($r->{json}{error}{code}, -32002, 'never: -32002 (timed out)');
ok($took >= 0.9, sprintf 'never: not before the 1 s timeout (%.2f s)', $took);
ok($s1->pump_until(sub {
    grep { $_->{params}{requestId} }
         $s1->received('notifications/cancelled') }, 3),
   'never: the server got notifications/cancelled');

$r = echo_call($sid, 3, 's1', 'ok', $s1);
is($r->{json}{result}{content}[0]{text}, 'ok',
   'the socket and the registry are fine: the next call works');
ok(!$s1->{closed}, 's1 still connected');
--- no_error_log
[alert]
[crit]



=== TEST 4: a result larger than reverse_mcp_max_message: close 1009, the call fails at once, the other server works
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_max_message 64k;
reverse_mcp_call_timeout 30s;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = up(name => 's1', tools => [ tool('echo'), tool('big') ],
            on_request => sub {
    my ($s, $msg) = @_;
    return { content => [ { type => 'text', text => 'x' x 70_000 } ] }
        if $msg->{method} eq 'tools/call' && $msg->{params}{name} eq 'big';
    return undef;
});
my $s2 = up(name => 's2');
my $sid = session();

# just under the limit passes intact
my $r = echo_call($sid, 1, 's1', 'y' x 60_000, $s1);
is(length($r->{json}{result}{content}[0]{text} // ''), 60_000,
   '60,000 bytes (under 64k) pass intact');

my $t0 = Time::HiRes::time();
$r = mcp(session => $sid, servers => [ $s1, $s2 ],
         msg => req(2, 'tools/call', { name => 's1__big' }));
my $took = Time::HiRes::time() - $t0;
is($r->{json}{error}{code}, -32003, 'too big: -32003 (the socket is gone)');
ok($took < 10, sprintf 'too big: at once (%.2f s)', $took);
is($s1->{close_code}, 1009, 'the server was closed with 1009 (too big)');
ok(wait_until(sub { !registered('s1') }, 3, 0.02), 's1 left the registry');

$r = echo_call($sid, 3, 's2', 'unaffected', $s2);
is($r->{json}{result}{content}[0]{text}, 'unaffected', 's2 answers');
--- no_error_log
[alert]
[crit]



=== TEST 5: 1,000 calls in flight on one socket at once, held by both workers: each caller gets its own answer
--- worker_connections: 4096
--- test_code_timeout: 180
--- http_config
reverse_mcp_zone rmcp:4m;
reverse_mcp_call_timeout 60s;
reverse_mcp_agent a1 { server s1 token=t; }
log_format calls '$pid $reverse_mcp_owner_pid $reverse_mcp_outcome';
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp {
    reverse_mcp_endpoint a1;
    access_log $TEST_NGINX_SERVROOT/logs/calls.log calls;
}
--- test_code
my @held;                       # calls the server holds until all came
my $hold = 1;
my $s1 = up(name => 's1', on_request => sub {
    my ($s, $msg) = @_;
    return undef unless $hold && $msg->{method} eq 'tools/call';
    push @held, $msg;
    return { noreply => 1 };
});
my $sid = session();
my $n = 1000;

my $t0 = Time::HiRes::time();
my @h;
for my $i (1 .. $n) {
    push @h, mcp_start(session => $sid,
                       msg => req("c$i", 'tools/call',
                                  { name => 's1__echo',
                                    arguments => { text => "t$i" } }));
    $s1->pump(0) if $i % 50 == 0;
}
ok($s1->pump_until(sub { @held >= $n }, 60),
   "the server has all $n calls in flight at once") or diag(scalar @held);
my %ids = map { $_->{id} => 1 } @held;
is(scalar keys %ids, $n, 'each with its own id on the socket');

# answer in reverse order
$hold = 0;
for my $m (reverse @held) {
    $s1->respond($m->{id}, { content => [ { type => 'text',
        text => $m->{params}{arguments}{text} } ] });
}

my ($ok, $workers) = (0, {});
for my $i (1 .. $n) {
    my $r = mcp_finish($h[$i - 1], 30);
    $ok++ if ($r->{json}{id} // '') eq "c$i"
             && ($r->{json}{result}{content}[0]{text} // '') eq "t$i";
}
is($ok, $n, "all $n callers got their own answer");
note(sprintf '%d calls sent, held and answered in %.1f s', $n,
             Time::HiRes::time() - $t0);

my $r = echo_call($sid, 'after', 's1', 'done', $s1);
is($r->{json}{result}{content}[0]{text}, 'done', 'the socket still works');

# which worker held each HTTP call, and which one owns the socket
my (%held, $crossed);
for (split /\n/, slurp("$servroot/logs/calls.log")) {
    my ($pid, $owner, $outcome) = split / /;
    next unless $owner =~ /^\d+$/;
    $held{$pid}++;
    $crossed++ if $pid != $owner;
}
is(scalar keys %held, 2, 'the calls were held by both workers')
    or diag(explain \%held);
ok($crossed, "$crossed of them crossed to the owner's mailbox");
--- no_error_log
[alert]
[crit]
[error]



=== TEST 6: kill -9 of the worker that owns the socket: the calls other workers hold fail at once with -32003, the server reconnects and works
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_call_timeout 60s;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
location = /pid { return 200 $pid; }
--- test_code
my $s1 = up(name => 's1', tools => [ tool('echo'), tool('hang') ],
            on_request => sub {
    my ($s, $msg) = @_;
    return { noreply => 1 }
        if $msg->{method} eq 'tools/call' && $msg->{params}{name} eq 'hang';
    return undef;
});
my $sid = session();
my $owner = entry('s1')->{owner_pid};
ok($owner, "s1 is owned by worker $owner");

# 8 calls held by the other worker (they cross to the owner's mailbox)
# and 4 by the owner itself
my $n = 12;
my @h = map {
    call_on_worker($_ <= 8 ? undef : $owner, $owner, $sid,
                   req("h$_", 'tools/call', { name => 's1__hang' }))
} 1 .. $n;
my $other = $h[0]{pid};
ok($s1->pump_until(sub { $s1->received('tools/call') >= $n }, 10),
   "the server has all $n calls");

expect_worker_kill($owner);
kill 'KILL', $owner;
my $t0 = Time::HiRes::time();
my ($gone, $eof) = (0, 0);
for my $h (@h) {
    my $r = mcp_finish($h, 5);
    if ($h->{pid} == $other) {
        $gone++ if ($r->{json}{error}{code} // 0) == -32003
                   && ($r->{json}{error}{message} // '') =~ /s1/;
    } else {
        $eof++ if $r->{status} == 0;    # its worker died with it
    }
}
my $took = Time::HiRes::time() - $t0;
is($gone, 8, "the 8 calls worker $other holds got -32003 naming s1");
is($eof, 4, 'the 4 calls the owner held ended with its connections');
ok($took < 5, sprintf 'all ended at once (%.2f s), not at the 60 s timeout',
                      $took);
ok(wait_until(sub { !entry('s1') }, 3, 0.02), 's1 was purged');

my $again = up(name => 's1');
my $r = mcp(session => $sid, servers => [ $again ],
            msg => req('after', 'tools/call',
                       { name => 's1__echo',
                         arguments => { text => 'alive' } }));
is($r->{json}{result}{content}[0]{text}, 'alive',
   's1 reconnected; the session and calls work');
--- no_error_log
[crit]
