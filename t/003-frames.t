# Frame-level behaviour of the connector after a successful upgrade:
# RFC 6455 protocol errors (exact close code and reason, the socket closed,
# the log line, the server gone from the registry), the message size limit,
# invalid UTF-8 / JSON / JSON-RPC, and the things that must keep working:
# fragmentation, interleaved control frames, binary frames, bytes pipelined
# with the handshake, the close handshake, TCP resets, gateway pings.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::WS;
use Test::Nginx::ReverseMCP;
use Cpanel::JSON::XS ();
use Time::HiRes qw(time sleep);

master_on();
workers(2);

our $JSON = Cpanel::JSON::XS->new->utf8->canonical->allow_nonref;

run_tests();


# ------------------------------------------------------------------------
# helpers (test_code runs in package main)
# ------------------------------------------------------------------------

sub tool {
    my ($name, %extra) = @_;
    return { name => $name, description => "tool $name",
             inputSchema => { type => 'object' }, %extra };
}

# the status entry of a server (undef when it is not registered)
sub srv_entry {
    my ($name) = @_;
    my $j = status_json();
    for my $a (@{ $j->{agents} }) {
        for my $s (@{ $a->{servers} }) {
            return $s if $s->{name} eq $name;
        }
    }
    return undef;
}

sub counters { status_json()->{counters} }

sub log_mark { length error_log_since_start() }

sub log_since { substr(error_log_since_start(), $_[0]) }

# waits (up to $t s) for $re in the error log written since $mark
sub log_has {
    my ($mark, $re, $t) = @_;
    return wait_until(sub { log_since($mark) =~ $re }, $t // 2, 0.05) ? 1 : 0;
}

sub close_line {
    my ($code, $reason) = @_;
    my $lvl = $code == 1000 || $code == 1001 ? 'info' : 'warn';
    return qr/\[$lvl\] \d+#\d+: \*\d+ reverse_mcp: closing server "s1" of agent "a1" with $code: \Q$reason\E, client: /;
}

# a scripted server named s1 that registers its tools
sub registered_s1 {
    my ($label, %o) = @_;
    my $s = Test::Nginx::ReverseMCP->new(name => 's1', token => 't1',
        tools => [ tool('alpha'), tool('beta') ], %o);
    is($s->connect, 101, "$label: s1 upgraded");
    ok($s->handshake(3), "$label: s1 answered initialize and tools/list");
    ok(wait_until(sub { my $e = srv_entry('s1'); $e && $e->{tools_count} == 2 },
                  2, 0.02),
       "$label: s1 registered with its 2 tools");
    return $s;
}

# s2 still connects, registers and leaves cleanly
sub check_good_server {
    my ($label) = @_;
    my $g = Test::Nginx::ReverseMCP->new(name => 's2', token => 't2',
                                         tools => [ tool('g1') ]);
    is($g->connect, 101, "$label: then s2 upgrades");
    ok($g->handshake(3), "$label: s2 handshake");
    ok(wait_until(sub { my $e = srv_entry('s2');
                        $e && $e->{tools_count} == 1
                           && $e->{tools}[0]{name} eq 'g1' }, 2, 0.02),
       "$label: s2 registered");
    $g->close(1000, 'done');
    $g->pump_until(sub { $g->{closed} }, 2);
    is($g->{close_code}, 1000, "$label: s2 close echoed");
    ok(!srv_entry('s2'), "$label: s2 unregistered");
    $g->disconnect;
}

__DATA__

=== TEST 1: protocol errors: exact close code and reason, socket closed, logged, unregistered
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
reverse_mcp_max_message 1k;
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code_timeout: 100
--- test_code
use Test::Nginx::WS ();
my $enc = \&Test::Nginx::WS::encode_frame;
my $mask = "\x11\x22\x33\x44";

# [ label, send sub, code, reason (string, or qr//), before_registration ]
my @cases = (
    [ 'unmasked text frame',
      sub { $_[0]->send_text('{"jsonrpc":"2.0","method":"x"}', mask => 0) },
      1002, 'unmasked client frame' ],
    [ 'unmasked frame before registration',
      sub { $_[0]->send_ping('x', mask => 0) },
      1002, 'unmasked client frame', 1 ],
    [ 'RSV1 set', sub { $_[0]->send_text('{}', rsv => 4) },
      1002, 'RSV bits set' ],
    [ 'RSV2 set', sub { $_[0]->send_text('{}', rsv => 2) },
      1002, 'RSV bits set' ],
    [ 'RSV3 set', sub { $_[0]->send_text('{}', rsv => 1) },
      1002, 'RSV bits set' ],
    [ 'reserved data opcode 0x3', sub { $_[0]->send_frame(0x3, 'x') },
      1002, 'unknown opcode 0x3' ],
    [ 'reserved control opcode 0xB', sub { $_[0]->send_frame(0xB, 'x') },
      1002, 'unknown opcode 0xb' ],
    [ 'ping with a 126-byte payload', sub { $_[0]->send_ping('p' x 126) },
      1002, 'control frame too long' ],
    [ 'fragmented ping (FIN=0)', sub { $_[0]->send_ping('p', fin => 0) },
      1002, 'fragmented control frame' ],
    [ 'continuation without a started message',
      sub { $_[0]->send_frame(0x0, '{}') },
      1002, 'unexpected continuation frame' ],
    [ 'new text frame inside a fragmented message',
      sub { $_[0]->send_text('{"jsonrpc":', fin => 0);
            $_[0]->send_text('"2.0"}') },
      1002, 'new data frame inside fragmented message' ],
    [ 'non-minimal length: 16-bit length for 5 bytes',
      sub { $_[0]->send_text('hello', len_bits => 16) },
      1002, 'non-minimal length encoding' ],
    [ 'non-minimal length: 64-bit length for 200 bytes',
      sub { $_[0]->send_text('x' x 200, len_bits => 64) },
      1002, 'non-minimal length encoding' ],
    [ 'close frame with a 1-byte payload',
      sub { $_[0]->send_frame(0x8, "\x03") },
      1002, 'close payload of 1 byte' ],
    [ 'close with code 1005', sub { $_[0]->send_close(1005, '') },
      1002, 'invalid close code' ],
    [ 'close with code 999', sub { $_[0]->send_close(999, 'x') },
      1002, 'invalid close code' ],
    [ 'close with code 1006', sub { $_[0]->send_close(1006) },
      1002, 'invalid close code' ],
    [ 'close with code 5000', sub { $_[0]->send_close(5000) },
      1002, 'invalid close code' ],
    [ 'close reason invalid UTF-8',
      sub { $_[0]->send_frame(0x8, pack('n', 1000) . "bye \xff") },
      1007, 'invalid UTF-8 in close reason' ],
    [ 'text message with invalid UTF-8 (0xFF)',
      sub { $_[0]->send_text(qq({"jsonrpc":"2.0","method":"\xff"})) },
      1007, 'invalid UTF-8 in text message' ],
    [ 'text message with an overlong encoding',
      sub { $_[0]->send_text(qq({"jsonrpc":"2.0","method":"\xc0\xaf"})) },
      1007, 'invalid UTF-8 in text message' ],
    [ 'text message with a UTF-16 surrogate',
      sub { $_[0]->send_text(qq({"jsonrpc":"2.0","method":"\xed\xa0\x80"})) },
      1007, 'invalid UTF-8 in text message' ],
    [ 'fragmented text message ending inside a code point',
      sub { $_[0]->send_text(qq({"a":"\xe2), fin => 0);
            $_[0]->send_frame(0x0, "\x82") },
      1007, 'invalid UTF-8 in text message' ],
    [ 'oversize: frame header claiming 2000 bytes, no payload sent',
      sub { $_[0]->send_raw($enc->(opcode => 1, payload => '',
                                   length_override => 2000)) },
      1009, 'message too big' ],
    [ 'oversize header before registration',
      sub { $_[0]->send_raw($enc->(opcode => 2, payload => '',
                                   length_override => 1025)) },
      1009, 'message too big', 1 ],
    [ '64-bit length with the MSB set',
      sub { $_[0]->send_raw(pack('CC', 0x81, 0x80 | 127)
                            . pack('Q>', (1 << 63) | 5) . $mask) },
      1002, '64-bit length with MSB set' ],
    [ 'fragmented message whose total exceeds the limit',
      sub { $_[0]->send_text('[' . ('1,' x 200), fin => 0);
            $_[0]->send_frame(0x0, '2,' x 200, fin => 0);
            # only the header of the third fragment (2 x 400 + 400 > 1024)
            $_[0]->send_raw($enc->(opcode => 0, payload => '',
                                   length_override => 400)) },
      1009, 'message too big' ],
    [ 'invalid JSON', sub { $_[0]->send_text('{"jsonrpc":"2.0",') },
      1007, qr/^invalid JSON: \S/ ],
    [ 'invalid JSON before registration',
      sub { $_[0]->send_text("not json\n") },
      1007, qr/^invalid JSON: \S/, 1 ],
    [ 'JSON that is not JSON-RPC: {"foo":1}',
      sub { $_[0]->send_text('{"foo":1}') },
      1002, 'invalid JSON-RPC 2.0 message' ],
    [ 'JSON-RPC version 1.0',
      sub { $_[0]->send_text('{"jsonrpc":"1.0","id":7,"method":"ping"}') },
      1002, 'invalid JSON-RPC 2.0 message' ],
    [ 'a bare JSON number', sub { $_[0]->send_text('42') },
      1002, 'invalid JSON-RPC 2.0 message' ],
    [ 'an empty batch', sub { $_[0]->send_text('[]') },
      1002, 'invalid JSON-RPC 2.0 message' ],
    [ 'empty message', sub { $_[0]->send_text('') },
      1007, 'empty message' ],
    [ 'message of white space only', sub { $_[0]->send_text(" \r\n") },
      1007, 'empty message' ],
);

my (@slow, @pending);

for my $c (@cases) {
    my ($label, $send, $code, $reason, $pre) = @$c;
    my $mark = log_mark();
    my ($s, $ws);

    if ($pre) {
        $ws = Test::Nginx::WS->connect(port => $port,
            path => '/ws?server_name=s1&token=t1');
        is($ws->status, 101, "$label: upgraded");
        my $init = $ws->recv_message(2);
        like($init->{payload} // '', qr/"method":"initialize"/,
             "$label: the gateway sent initialize");
    } else {
        $s = registered_s1($label);
        $ws = $s->ws;
    }
    my $registrations = counters()->{registrations};

    $send->($ws);
    my ($got_code, $got_reason) = $ws->recv_close(3);
    is($got_code, $code, "$label: close code $code");
    if (ref $reason) {
        like($got_reason, $reason, "$label: close reason");
    } else {
        is($got_reason, $reason, "$label: close reason");
    }

    # the entry is dropped when the close frame is sent
    ok(!srv_entry('s1'), "$label: s1 not in the registry");
    is(counters()->{registrations}, $registrations,
       "$label: registrations counter");

    ok(log_has($mark, ref $reason
                      ? qr/\[warn\] .*reverse_mcp: closing server "s1" of agent "a1" with $code: invalid JSON: /
                      : close_line($code, $reason)),
       "$label: logged") or diag(log_since($mark));
    if (!$pre) {
        ok(log_has($mark, qr/\[info\] .*reverse_mcp: server "s1" of agent "a1" unregistered \(connection \d+\)/),
           "$label: unregistration logged");
    }

    # a well-behaved client answers the close frame; RFC 6455 7.1.7:
    # after failing the connection the gateway closes TCP at once
    $ws->send_close(1000);
    my $t0 = time;
    if ($ws->is_eof(0.5)) {
        pass("$label: socket closed");
    } else {
        push @slow, $label;
        push @pending, [ $label, $ws, $t0 ];
    }

    check_good_server($label);
}

# sockets not closed within 0.5 s: still closed eventually (close wait)
for my $p (@pending) {
    my ($label, $ws, $t0) = @$p;
    my $left = $t0 + 3 - time;
    ok($ws->is_eof($left > 0 ? $left : 0.01), "$label: socket closed");
}

ok(!@slow, 'TCP closed within 0.5 s once the client answered the close '
           . 'frame (no close wait after failing the connection)')
    or diag("slow:\n  " . join("\n  ", @slow) . "\n"
            . join '', error_log_since_start()
                       =~ /^(.*did not answer the close frame.*\n)/mg);
is(srv_entry('s1'), undef, 's1 is not registered at the end');
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: fragmentation, interleaved ping, split code point, binary frames, pipelined bytes
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
reverse_mcp_max_message 1k;
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $info_name = "caf\x{e9} \x{20ac}uro";

# the initialize result in 3 fragments, a ping between the first two, and
# the second split in the middle of the 3-byte UTF-8 sequence of U+20AC
my $s = Test::Nginx::ReverseMCP->new(name => 's1', token => 't1',
    tools => [ tool('alpha') ],
    on_request => sub {
        my ($s, $m) = @_;
        return undef unless $m->{method} eq 'initialize';
        $s->{init_count}++;
        my $bytes = $main::JSON->encode({ jsonrpc => '2.0', id => $m->{id},
            result => { protocolVersion => '2025-06-18',
                        capabilities => { tools => {} },
                        serverInfo => { name => $info_name,
                                        version => '1' } } }) . "\n";
        my $at = index($bytes, "\xe2\x82\xac");
        die "no euro sign in $bytes" if $at < 0;
        my $ws = $s->ws;
        $ws->send_text(substr($bytes, 0, 10), fin => 0);
        $ws->send_ping('between');
        $ws->send_frame(0x0, substr($bytes, 10, $at + 1 - 10), fin => 0);
        $ws->send_frame(0x0, substr($bytes, $at + 1));
        return { noreply => 1 };
    });
is($s->connect, 101, 'fragmented: upgraded');
ok($s->handshake(3), 'fragmented initialize response accepted: the gateway '
                     . 'went on to tools/list');
is_deeply($s->ws->{pongs}, [ 'between' ],
          'the ping between fragments got a pong with the same payload');
ok(wait_until(sub { srv_entry('s1') }, 2, 0.02), 's1 registered');
my $e = srv_entry('s1');
is($e->{server_info}{name}, $info_name,
   'serverInfo with a code point split across fragments');
is_deeply([ map { $_->{name} } @{ $e->{tools} } ], [ 'alpha' ], 's1 tools');

# a request split in 3 fragments with a ping inside: answered
$s->ws->send_text('{"jsonrpc":"2.0",', fin => 0);
$s->ws->send_frame(0x0, "\"id\":\"fr\xc3", fin => 0);
$s->ws->send_ping('p2');
$s->ws->send_frame(0x0, "\xa9g\",\"method\":\"ping\"}\n");
my $r = $s->wait_response("fr\x{e9}g", 2);
is_deeply($r, { jsonrpc => '2.0', id => "fr\x{e9}g", result => {} },
          'fragmented ping request answered');
is_deeply($s->ws->{pongs}, [ 'between', 'p2' ], 'second interleaved pong');

# an empty continuation frame is fine
$s->ws->send_text('{"jsonrpc":"2.0","id":31,"method":"ping"}', fin => 0);
$s->ws->send_frame(0x0, '');
is_deeply($s->wait_response(31, 2),
          { jsonrpc => '2.0', id => 31, result => {} },
          'message ending with an empty continuation frame');
$s->close(1000);
$s->pump_until(sub { $s->{closed} }, 2);
is($s->{close_code}, 1000, 's1 closed normally');

# binary frames carrying JSON (every message the server sends)
my $bin = Test::Nginx::ReverseMCP->new(name => 's2', token => 't2',
    tools => [ tool('bin1'), tool('bin2') ]);
$bin->{newline} = 0;
{
    no warnings 'redefine';
    # this object's frames go out as binary: wrap its send_text
    my $orig = \&Test::Nginx::ReverseMCP::send_text;
    local *Test::Nginx::ReverseMCP::send_text = sub {
        my ($self, $text) = @_;
        return $orig->(@_) unless $self == $bin;
        return $self->ws->send_binary($text);
    };
    is($bin->connect, 101, 'binary: upgraded');
    ok($bin->handshake(3), 'binary: initialize and tools/list answered in '
                         . 'binary frames');
    ok(wait_until(sub { my $x = srv_entry('s2'); $x && $x->{tools_count} == 2 },
                  2, 0.02), 'binary: s2 registered with 2 tools');
    my $id = $bin->request('ping');
    is_deeply($bin->wait_response($id, 2),
              { jsonrpc => '2.0', id => $id, result => {} },
              'binary ping request answered');
}
$bin->close(1000);
$bin->pump_until(sub { $bin->{closed} }, 2);

# a ping frame written together with the upgrade request
my $p = Test::Nginx::ReverseMCP->new(name => 's1', token => 't1',
    tools => [ tool('pipe') ],
    ws_opts => { extra_raw => Test::Nginx::WS::encode_frame(
                     opcode => 0x9, payload => 'early') });
is($p->connect, 101, 'pipelined: upgraded');
ok($p->handshake(3), 'pipelined: handshake');
is_deeply($p->ws->{pongs}, [ 'early' ],
          'the ping pipelined with the upgrade request got its pong');
ok(wait_until(sub { srv_entry('s1') }, 2, 0.02), 'pipelined: s1 registered');

# a complete JSON-RPC request pipelined too (before initialize is answered)
my $q = Test::Nginx::ReverseMCP->new(name => 's2', token => 't2',
    tools => [ tool('pipe2') ],
    ws_opts => { extra_raw => Test::Nginx::WS::encode_frame(
                     opcode => 0x1,
                     payload => qq({"jsonrpc":"2.0","id":"early","method":"ping"}\n)) });
is($q->connect, 101, 'pipelined request: upgraded');
ok($q->handshake(3), 'pipelined request: handshake');
is_deeply($q->{responses}{early},
          { jsonrpc => '2.0', id => 'early', result => {} },
          'the request pipelined with the upgrade request was answered');
$_->disconnect for $p, $q;
--- no_error_log
[warn]
[error]
[crit]
[alert]



=== TEST 3: close handshake, TCP reset and FIN unregister at once; the gateway keeps serving
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
# client close 1000 "bye": echoed, unregistered at once, socket closed
my $mark = log_mark();
my $s = registered_s1('close 1000');
my $before = counters();
$s->ws->send_close(1000, 'bye');
my ($code, $reason) = $s->ws->recv_close(2);
is($code, 1000, 'close 1000 echoed with 1000');
ok(!srv_entry('s1'), 'unregistered as soon as the close frame is answered');
ok($s->ws->is_eof(1), 'the gateway closed the TCP connection');
ok(log_has($mark, qr/\[info\] .*reverse_mcp: server "s1" of agent "a1" closed the WebSocket with 1000 "bye", client: /),
   'logged: closed the WebSocket with 1000 "bye"');
ok(log_has($mark, qr/reverse_mcp: server "s1" of agent "a1" unregistered/),
   'logged: unregistered');
my $after = counters();
is($after->{deregistrations} - $before->{deregistrations}, 1,
   'deregistrations counter +1');
is($after->{connections}, $before->{connections} - 1,
   'connections gauge -1');
unlike(log_since($mark), qr/closing server "s1"/,
       'a normal close is not logged as the gateway closing');
check_good_server('after close 1000');

# a close frame with no payload: echoed with an empty close frame
$s = registered_s1('empty close');
$s->ws->send_close();
($code) = $s->ws->recv_close(2);
is($code, 1005, 'an empty close frame is answered with an empty close frame');
ok(!srv_entry('s1'), 'empty close: unregistered');
ok($s->ws->is_eof(1), 'empty close: socket closed');

# TCP reset
$mark = log_mark();
$s = registered_s1('reset');
$s->disconnect(1);
ok(wait_until(sub { !srv_entry('s1') }, 2, 0.02),
   'TCP reset: unregistered within 2 s');
ok(log_has($mark, qr/\[info\] .*reverse_mcp: server "s1" of agent "a1" closed the connection without a close frame/),
   'logged: closed the connection without a close frame');
check_good_server('after a TCP reset');

# TCP FIN without a close frame
$mark = log_mark();
$s = registered_s1('fin');
$s->disconnect;
ok(wait_until(sub { !srv_entry('s1') }, 2, 0.02),
   'TCP close: unregistered within 2 s');
ok(log_has($mark, qr/server "s1" of agent "a1" closed the connection without a close frame/),
   'TCP close: logged');
check_good_server('after a TCP close');

# a reset in the middle of a fragmented message
$s = registered_s1('reset mid-message');
$s->ws->send_text('{"jsonrpc":"2.0",', fin => 0);
$s->disconnect(1);
ok(wait_until(sub { !srv_entry('s1') }, 2, 0.02),
   'reset mid-message: unregistered');
check_good_server('after a reset mid-message');
# s2's close finishes in the worker just after the client saw the echo
ok(wait_until(sub { status_json()->{counters}{connections} == 0 }, 1, 0.02),
   'no connection left')
    or diag(explain(status_json()->{counters}));
--- no_error_log
[error]
[crit]
[alert]



=== TEST 4: gateway pings; a peer that answers stays, a silent one is closed
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
reverse_mcp_ping_interval 1s;
reverse_mcp_ping_timeout 1s;
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $t0 = time;
my $live = Test::Nginx::ReverseMCP->new(name => 's1', token => 't1',
                                        tools => [ tool('alive') ]);
my $mute = Test::Nginx::ReverseMCP->new(name => 's2', token => 't2',
                                        tools => [ tool('mute') ],
                                        ws_opts => { auto_pong => 0 });
is($live->connect, 101, 's1 upgraded');
is($mute->connect, 101, 's2 (never answers pings) upgraded');
ok($live->handshake(2), 's1 handshake');
ok($mute->handshake(2), 's2 handshake');
ok(wait_until(sub { srv_entry('s1') && srv_entry('s2') }, 2, 0.02),
   'both registered');

# timing bounds scale with TEST_NGINX_TIMEOUT_SCALE (valgrind)
my $sc = timeout_scale();
my ($first_ping, $gone_at);
while (time < $t0 + 3.5 * $sc) {
    $live->pump(0.02);
    $mute->pump(0.02) unless $mute->{closed};
    $first_ping //= time if @{ $mute->ws->{pings} };
    if (!$gone_at && !srv_entry('s2')) {
        $gone_at = time;
    }
    last if $gone_at && @{ $live->ws->{pings} } >= 3;
}

ok(defined $first_ping && $first_ping - $t0 < 1.5 * $sc,
   'the client received a ping within 1.5 s (ping_interval 1s)')
    or diag(defined $first_ping ? $first_ping - $t0 : 'no ping');
ok(length($mute->ws->{pings}[0] // 'x') <= 125, 'ping payload <= 125 bytes');
ok($gone_at && $gone_at - $t0 < 3.2 * $sc,
   'the silent peer is gone from status within interval + timeout')
    or diag($gone_at ? $gone_at - $t0 : 'still registered');
ok($mute->ws->is_eof(1), 'the silent peer\'s socket is closed');
ok(log_has(0, qr/\[warn\] .*reverse_mcp: server "s2" of agent "a1" sent no pong within 1000ms, closing/),
   'logged: sent no pong within');

cmp_ok(scalar @{ $live->ws->{pings} }, '>=', 2,
       's1 received the periodic pings');
ok(srv_entry('s1'), 's1, which answers pings, is still registered');
unlike(error_log_since_start(), qr/server "s1" .*sent no pong/,
       's1 was never considered silent');
check_good_server('after the ping timeout');
--- no_error_log
[error]
[crit]
[alert]
