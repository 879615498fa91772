package Test::Nginx::WS;

# Raw, byte-level WebSocket (RFC 6455) test client, plus the tiny HTTP/1.1
# socket layer that Test::Nginx::Socket's request helpers share.
#
#   my $ws = Test::Nginx::WS->connect(
#       port => $port, path => '/ws?server_name=x&token=y',
#       headers => [ 'X-MCP-Server-Name' => 'x', Authorization => 'Bearer y' ],
#       protocols => 'mcp', timeout => 5);
#   $ws->status;            # 101, 401, ... (0 when the TCP/TLS connect failed)
#   $ws->ok;                # 101 and Sec-WebSocket-Accept verified
#   $ws->send_text('{"jsonrpc":"2.0"}');
#   my $m = $ws->recv_message(2);       # { opcode, payload, fragments }
#   $ws->send_frame(0x1, 'x', fin => 0, rsv => 4, mask => 0);  # malformed
#   my ($code, $reason) = $ws->recv_close(2);
#   $ws->shutdown_hard;     # TCP RST
#
# Nothing is sent automatically except pongs answering pings inside
# recv_message/recv_close (auto_pong => 1, the default).  See the POD below.

use strict;
use warnings;
use feature 'bitwise';
no warnings 'experimental::bitwise';

use Digest::SHA qw(sha1);
use Encode ();
use Errno ();
use IO::Socket::INET ();
use MIME::Base64 qw(encode_base64);
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time);

use constant {
    OP_CONT   => 0x0,
    OP_TEXT   => 0x1,
    OP_BINARY => 0x2,
    OP_CLOSE  => 0x8,
    OP_PING   => 0x9,
    OP_PONG   => 0xa,
    WS_GUID   => '258EAFA5-E914-47DA-95CA-C5AB0DC85B11',
};

our $DEFAULT_TIMEOUT = 5;

# Slow nginx builds (valgrind, sanitizers): every timeout is multiplied by
# TEST_NGINX_TIMEOUT_SCALE (default 1).
sub timeout_scale {
    my $s = $ENV{TEST_NGINX_TIMEOUT_SCALE};
    return defined $s && $s =~ /^\d+(?:\.\d+)?$/ && $s > 0 ? $s : 1;
}


# ------------------------------------------------------------------------
# connection layer: non-blocking socket + read buffer, deadlines everywhere
# ------------------------------------------------------------------------

# Opens a TCP (or TLS) connection.  Always returns an object; on failure
# $self->{sock} is undef and $self->{error} says why.
sub _open {
    my ($class, %o) = @_;

    my $host = $o{host} // '127.0.0.1';
    my $port = $o{port} // $ENV{TEST_NGINX_SERVER_PORT};
    my $timeout = $o{timeout} // $DEFAULT_TIMEOUT;
    my $self = bless {
        host => $host, port => $port, timeout => $timeout,
        ssl => $o{ssl} ? 1 : 0, buf => '', eof => 0, error => undef,
    }, $class;

    unless ($port) {
        $self->{error} = 'no port given and TEST_NGINX_SERVER_PORT unset';
        return $self;
    }

    my $sock;
    if ($o{ssl}) {
        require IO::Socket::SSL;
        my $verify = $o{ssl_verify} // (defined $o{ssl_ca} ? 1 : 0);
        $sock = IO::Socket::SSL->new(
            PeerHost => $host,
            PeerPort => $port,
            Timeout  => $timeout * timeout_scale(),
            SSL_verify_mode => $verify
                ? IO::Socket::SSL::SSL_VERIFY_PEER()
                : IO::Socket::SSL::SSL_VERIFY_NONE(),
            (defined $o{ssl_ca} ? (SSL_ca_file => $o{ssl_ca}) : ()),
            (defined $o{ssl_hostname} ? (SSL_hostname => $o{ssl_hostname})
                                      : ()),
            SSL_verifycn_name   => $o{ssl_hostname} // $host,
            SSL_verifycn_scheme => 'http',
            %{ $o{ssl_opts} || {} },
        );
        unless ($sock) {
            $self->{error} = "TLS connect to $host:$port failed: "
                             . IO::Socket::SSL::errstr();
            return $self;
        }

    } else {
        $sock = IO::Socket::INET->new(
            PeerAddr => $host, PeerPort => $port, Proto => 'tcp',
            Timeout => $timeout * timeout_scale(),
        );
        unless ($sock) {
            $self->{error} = "connect to $host:$port failed: "
                             . ($@ || $!);
            return $self;
        }
    }

    binmode $sock;
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    $sock->blocking(0);
    $self->{sock} = $sock;
    return $self;
}

sub _deadline {
    my ($self, $timeout) = @_;
    return time + ($timeout // $self->{timeout} // $DEFAULT_TIMEOUT)
                  * timeout_scale();
}

sub _would_block {
    my ($self) = @_;
    return 1 if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
    return 0 unless $self->{ssl};
    my $e = $IO::Socket::SSL::SSL_ERROR;
    return defined $e && ($e == IO::Socket::SSL::SSL_WANT_READ()
                          || $e == IO::Socket::SSL::SSL_WANT_WRITE());
}

sub _wait_fd {
    my ($self, $for_write, $deadline) = @_;
    my $left = $deadline - time;
    $left = 0 if $left < 0;
    my $vec = '';
    vec($vec, fileno($self->{sock}), 1) = 1;
    my ($r, $w) = $for_write ? (undef, $vec) : ($vec, undef);
    my $n = select($r, $w, undef, $left);
    return $n > 0 ? 1 : $n == 0 ? 0 : $!{EINTR} ? 0 : -1;
}

# Reads whatever is available into $self->{buf}.
# Returns the byte count, 0 on EOF/error (sets {eof}), undef on timeout.
sub _read_more {
    my ($self, $deadline) = @_;
    my $sock = $self->{sock};
    return 0 if !$sock || $self->{eof};

    while (1) {
        unless ($self->{ssl} && $sock->pending) {
            my $ready = $self->_wait_fd(0, $deadline);
            if ($ready < 0) {
                return $self->_set_eof("select: $!");
            }
            if ($ready == 0) {
                return undef if time >= $deadline;
                next;
            }
        }

        my $n = sysread($sock, my $chunk, 65536);
        if (defined $n) {
            return $self->_set_eof if $n == 0;
            $self->{buf} .= $chunk;
            return $n;
        }
        if ($self->_would_block) {
            return undef if time >= $deadline;
            next;
        }
        $self->{reset} = 1 if $!{ECONNRESET};
        return $self->_set_eof("read: $!");
    }
}

sub _set_eof {
    my ($self, $err) = @_;
    $self->{eof} = 1;
    $self->{error} //= $err if defined $err;
    return 0;
}

# Writes all bytes; returns 1, or 0 on error/timeout (see {error}).
sub _write_all {
    my ($self, $data, $deadline) = @_;
    my $sock = $self->{sock} or return 0;
    local $SIG{PIPE} = 'IGNORE';
    $deadline //= $self->_deadline;

    while (length $data) {
        my $n = syswrite($sock, $data);
        if (defined $n && $n > 0) {
            substr($data, 0, $n, '');
            next;
        }
        if (!defined $n && $self->_would_block) {
            if (time >= $deadline) {
                $self->{error} = 'write timed out';
                return 0;
            }
            my $want_read = $self->{ssl} && defined $IO::Socket::SSL::SSL_ERROR
                && $IO::Socket::SSL::SSL_ERROR
                   == IO::Socket::SSL::SSL_WANT_READ();
            $self->_wait_fd(!$want_read, $deadline);
            next;
        }
        $self->{error} = "write: " . ($! || 'failed');
        return 0;
    }
    return 1;
}


# ------------------------------------------------------------------------
# HTTP/1.1 bits (shared with Test::Nginx::Socket)
# ------------------------------------------------------------------------

# format_request($method, $target, \@header_pairs, $body, $version)
sub format_request {
    my ($method, $target, $headers, $body, $version) = @_;
    my $req = "$method $target HTTP/" . ($version // '1.1') . "\r\n";
    my @h = flatten_headers($headers);
    while (my ($k, $v) = splice @h, 0, 2) {
        $req .= "$k: $v\r\n";
    }
    return $req . "\r\n" . ($body // '');
}

# headers given as [k => v, ...] or { k => v } -> flat (k, v, ...) list
sub flatten_headers {
    my ($h) = @_;
    return () unless $h;
    return @$h if ref $h eq 'ARRAY';
    return map { ($_ => $h->{$_}) } sort keys %$h;
}

# Reads a response head; returns { status, reason, version, headers,
# header_list } or undef (timeout / EOF; see {error}).
sub _read_http_head {
    my ($self, $deadline) = @_;
    my $end;
    until (($end = index($self->{buf}, "\r\n\r\n")) >= 0) {
        my $n = $self->_read_more($deadline);
        next if $n;
        $self->{error} //= defined $n
            ? 'connection closed before the response head'
            : 'timed out reading the response head';
        $self->{timed_out} = 1 unless defined $n;
        return undef;
    }
    my $head = substr($self->{buf}, 0, $end + 4, '');
    my ($line, @lines) = split /\r?\n/, $head;

    my %res = (headers => {}, header_list => [], raw_head => $head);
    if ($line =~ m{^HTTP/(\d\.\d)\s+(\d{3})(?:\s+(.*))?$}) {
        @res{qw(version status reason)} = ($1, $2 + 0, $3 // '');
    } else {
        $self->{error} = "bad status line: $line";
        @res{qw(version status reason)} = ('', 0, '');
    }
    for (@lines) {
        next unless /^([^:\s]+)\s*:\s*(.*?)\s*$/;
        push @{ $res{header_list} }, [$1, $2];
        my $k = lc $1;
        $res{headers}{$k} = exists $res{headers}{$k}
                            ? "$res{headers}{$k}, $2" : $2;
    }
    return \%res;
}

# Reads the body following the framing of $res; sets $res->{body}
# (chunked decoded).  Sets $res->{error}/{timed_out} when incomplete.
sub _read_http_body {
    my ($self, $res, $method, $deadline) = @_;
    my $h = $res->{headers};
    my $st = $res->{status};

    if (($method // '') eq 'HEAD' || $st == 204 || $st == 304
        || ($st >= 100 && $st < 200))
    {
        $res->{body} = '';
        return;
    }

    my $complete;
    if (($h->{'transfer-encoding'} // '') =~ /chunked/i) {
        $complete = sub { _dechunk(\$self->{buf}, $res) };
    } elsif (defined $h->{'content-length'}) {
        my $len = $h->{'content-length'};
        $complete = sub {
            return 0 if length $self->{buf} < $len;
            $res->{body} = substr($self->{buf}, 0, $len, '');
            return 1;
        };
    } else {
        $complete = sub { 0 };      # until EOF
    }

    until ($complete->()) {
        my $n = $self->_read_more($deadline);
        next if $n;
        if (defined $n) {           # EOF
            $res->{body} = $self->{buf};
            $self->{buf} = '';
            $res->{error} = 'connection closed before the body was complete'
                if defined $h->{'content-length'}
                   || defined $h->{'transfer-encoding'};
        } else {
            $res->{body} = $self->{buf};
            $res->{timed_out} = 1;
            $res->{error} = 'timed out reading the response body';
        }
        return;
    }
}

# Decodes a complete chunked body at the start of $$buf; returns 1 and
# consumes it, or 0 when more data is needed.
sub _dechunk {
    my ($buf, $res) = @_;
    my ($pos, $body) = (0, '');
    while (1) {
        my $eol = index($$buf, "\n", $pos);
        return 0 if $eol < 0;
        my ($size) = substr($$buf, $pos, $eol - $pos) =~ /^\s*([0-9a-fA-F]+)/;
        return 0 unless defined $size;      # garbage: wait for EOF
        $size = hex $size;
        $pos = $eol + 1;
        if ($size == 0) {                   # trailers up to an empty line
            while (1) {
                my $e = index($$buf, "\n", $pos);
                return 0 if $e < 0;
                my $line = substr($$buf, $pos, $e - $pos);
                $pos = $e + 1;
                last if $line =~ /^\r?$/;
            }
            substr($$buf, 0, $pos, '');
            $res->{body} = $body;
            return 1;
        }
        return 0 if length($$buf) < $pos + $size + 2;
        $body .= substr($$buf, $pos, $size);
        $pos += $size;
        $pos += substr($$buf, $pos, 2) eq "\r\n" ? 2 : 1;
    }
}

# One HTTP exchange on a fresh connection:
#   Test::Nginx::WS->http_exchange(request => $bytes, method => 'GET',
#       port => ..., host => ..., timeout => ..., ssl => ..., ssl_ca => ...)
# Returns { status (0 on failure), reason, headers (lowercase keys, repeated
# headers joined with ", "), header_list ([name, value] pairs), body,
# error, timed_out }.
sub http_exchange {
    my ($class, %o) = @_;
    my $c = $class->_open(%o);
    my $res = { status => 0, headers => {}, header_list => [], body => '' };
    unless ($c->{sock}) {
        $res->{error} = $c->{error};
        return $res;
    }
    my $deadline = $c->_deadline;

    # a write error is not fatal: the server may have answered early
    $c->_write_all($o{request}, $deadline);

    my $head = $c->_read_http_head($deadline);
    if ($head) {
        %$res = (%$res, %$head);
        $c->_read_http_body($res, $o{method}, $deadline);
    } else {
        $res->{timed_out} = $c->{timed_out};
    }
    $res->{error} //= $c->{error} unless $head;
    $c->close;
    return $res;
}


# ------------------------------------------------------------------------
# WebSocket client
# ------------------------------------------------------------------------

sub connect {
    my ($class, %o) = @_;
    my $self = $class->_open(%o);
    $self->{auto_pong} = $o{auto_pong} // 1;
    $self->{$_} = [] for qw(pings pongs skipped);
    $self->{status} = 0;
    $self->{headers} = {};
    $self->{body} = '';
    $self->{ok} = 0;
    return $self unless $self->{sock};

    # pre_request: a keep-alive HTTP request sent (and its response read,
    # into {pre_response}) on the same connection before the upgrade,
    # e.g. to learn which nginx worker holds the connection
    if (defined $o{pre_request}) {
        my $deadline = $self->_deadline;
        $self->_write_all($o{pre_request}, $deadline);
        my $pre = $self->_read_http_head($deadline) or return $self;
        $self->_read_http_body($pre, 'GET', $deadline);
        $self->{pre_response} = $pre;
    }

    my $key = $o{key}
        // encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    $self->{key} = $key;

    my @h = (Host => $o{host_header} // "$self->{host}:$self->{port}");
    push @h, Upgrade => 'websocket' unless $o{no_upgrade};
    push @h, Connection => 'Upgrade' unless $o{no_connection};
    push @h, 'Sec-WebSocket-Key' => $key unless $o{no_key};
    push @h, 'Sec-WebSocket-Version' => $o{version} // 13
        unless $o{no_version};
    if (defined $o{protocols}) {
        push @h, 'Sec-WebSocket-Protocol' => ref $o{protocols}
            ? join(', ', @{ $o{protocols} }) : $o{protocols};
    }
    push @h, flatten_headers($o{headers});

    my $deadline = $self->_deadline;
    my $req = format_request($o{method} // 'GET', $o{path} // '/', \@h)
              . ($o{extra_raw} // '');
    $self->_write_all($req, $deadline);

    my $head = $self->_read_http_head($deadline) or return $self;
    $self->{$_} = $head->{$_} for qw(status reason headers header_list);

    if ($self->{status} == 101) {
        my $expect = encode_base64(sha1($key . WS_GUID), '');
        $self->{ok} = !$o{no_key}
            && ($head->{headers}{'sec-websocket-accept'} // '') eq $expect
            ? 1 : 0;
    } else {
        $self->_read_http_body($head, $o{method} // 'GET', $deadline);
        $self->{body} = $head->{body} // '';
    }
    return $self;
}

sub status   { $_[0]{status} }
sub headers  { $_[0]{headers} }
sub body     { $_[0]{body} }
sub ok       { $_[0]{ok} }
sub error    { $_[0]{error} }
sub sock     { $_[0]{sock} }
sub protocol { $_[0]{headers}{'sec-websocket-protocol'} }

# ----- sending -----

# encode_frame(opcode => 1, payload => '...', fin => 1, mask => 1, rsv => 0,
#              length_override => undef, mask_key => undef, len_bits => undef)
# rsv is the 3-bit RSV1..RSV3 value (4 = RSV1); len_bits (7, 16 or 64)
# forces a (possibly non-minimal) length encoding.
sub encode_frame {
    my (%f) = @_;
    my $payload = $f{payload} // '';
    $payload = Encode::encode_utf8($payload) if utf8::is_utf8($payload);

    my $len = $f{length_override} // length $payload;
    my $mask = $f{mask} // 1;
    my $bits = $f{len_bits}
               // ($len < 126 ? 7 : $len < 65536 ? 16 : 64);

    my $mbit = $mask ? 0x80 : 0;
    my $frame = pack('C', (($f{fin} // 1) ? 0x80 : 0)
                          | ((($f{rsv} // 0) & 7) << 4)
                          | ($f{opcode} & 0x0f));
    $frame .= $bits == 7  ? pack('C', $mbit | ($len & 0x7f))
            : $bits == 16 ? pack('Cn', $mbit | 126, $len)
            :               pack('CQ>', $mbit | 127, $len);
    if ($mask) {
        my $key = $f{mask_key} // pack('N', int rand 2**32);
        $frame .= $key;
        $payload = _mask($payload, $key);
    }
    return $frame . $payload;
}

sub _mask {
    my ($data, $key) = @_;
    my $len = length $data;
    return $data unless $len;
    return $data ^. substr($key x (int($len / 4) + 1), 0, $len);
}

sub send_frame {
    my ($self, $opcode, $payload, %f) = @_;
    return $self->send_raw(
        encode_frame(%f, opcode => $opcode, payload => $payload));
}

sub send_text   { $_[0]->send_frame(OP_TEXT,   @_[1 .. $#_]) }
sub send_binary { $_[0]->send_frame(OP_BINARY, @_[1 .. $#_]) }
sub send_ping   { $_[0]->send_frame(OP_PING,   @_[1 .. $#_]) }
sub send_pong   { $_[0]->send_frame(OP_PONG,   @_[1 .. $#_]) }

# send_close($code, $reason, %frame_opts); no $code = empty payload
sub send_close {
    my ($self, $code, $reason, %f) = @_;
    my $payload = '';
    if (defined $code) {
        $reason //= '';
        $reason = Encode::encode_utf8($reason) if utf8::is_utf8($reason);
        $payload = pack('n', $code) . $reason;
    }
    return $self->send_frame(OP_CLOSE, $payload, %f);
}

sub send_raw {
    my ($self, $bytes) = @_;
    return $self->_write_all($bytes);
}

# ----- receiving -----

sub _parse_frame {
    my ($self) = @_;
    my $buf = \$self->{buf};
    return undef if length $$buf < 2;

    my ($b0, $b1) = unpack 'CC', $$buf;
    my $len = $b1 & 0x7f;
    my $off = 2;
    if ($len == 126) {
        return undef if length $$buf < 4;
        $len = unpack 'n', substr($$buf, 2, 2);
        $off = 4;
    } elsif ($len == 127) {
        return undef if length $$buf < 10;
        $len = unpack 'Q>', substr($$buf, 2, 8);
        $off = 10;
    }
    my $masked = $b1 & 0x80 ? 1 : 0;
    my $key;
    if ($masked) {
        return undef if length $$buf < $off + 4;
        $key = substr($$buf, $off, 4);
        $off += 4;
    }
    return undef if length $$buf < $off + $len;

    my $payload = substr($$buf, $off, $len);
    substr($$buf, 0, $off + $len, '');
    $payload = _mask($payload, $key) if $masked;

    my $f = {
        fin => $b0 & 0x80 ? 1 : 0, rsv => ($b0 >> 4) & 7,
        opcode => $b0 & 0x0f, masked => $masked, payload => $payload,
    };
    if ($f->{opcode} == OP_CLOSE) {
        @$f{qw(close_code close_reason)} = length $payload >= 2
            ? (unpack('n', $payload), substr($payload, 2))
            : (1005, '');
    }
    return $f;
}

# recv_frame($timeout) -> frame hashref, { eof => 1 }, or undef on timeout
sub recv_frame {
    my ($self, $timeout) = @_;
    return $self->_recv_frame_by($self->_deadline($timeout));
}

# recv_frame with an absolute deadline (already scaled by _deadline)
sub _recv_frame_by {
    my ($self, $deadline) = @_;
    while (1) {
        my $f = $self->_parse_frame;
        return $f if $f;
        return { eof => 1 } if $self->{eof} || !$self->{sock};
        defined $self->_read_more($deadline) or return undef;
    }
}

# Control frames seen while waiting for something else: pings are
# answered when auto_pong is on; pongs are recorded.
sub _control {
    my ($self, $f) = @_;
    if ($f->{opcode} == OP_PING) {
        push @{ $self->{pings} }, $f->{payload};
        $self->send_pong($f->{payload}) if $self->{auto_pong};
        return 1;
    }
    if ($f->{opcode} == OP_PONG) {
        push @{ $self->{pongs} }, $f->{payload};
        return 1;
    }
    return 0;
}

# recv_message($timeout) -> { opcode, payload, fragments } for a complete
# data message, the close frame hashref (opcode 8, close_code,
# close_reason), { eof => 1 }, or undef on timeout.
sub recv_message {
    my ($self, $timeout) = @_;
    my $deadline = $self->_deadline($timeout);
    my $msg;
    while (1) {
        my $f = $self->_recv_frame_by($deadline);
        return $f if !$f || $f->{eof};
        next if $self->_control($f);
        if ($f->{opcode} == OP_CLOSE) {
            @$self{qw(close_code close_reason)} =
                @$f{qw(close_code close_reason)};
            return $f;
        }
        if ($msg) {
            $msg->{payload} .= $f->{payload};
            $msg->{fragments}++;
        } else {
            $msg = { opcode => $f->{opcode}, payload => $f->{payload},
                     fragments => 1, rsv => $f->{rsv} };
        }
        return $msg if $f->{fin};
    }
}

# recv_close($timeout) -> ($code, $reason) of the peer's close frame
# (1005 for an empty one); () on timeout/EOF.  Data frames read meanwhile
# go to $ws->{skipped}.  No close frame is sent back.
sub recv_close {
    my ($self, $timeout) = @_;
    my $deadline = $self->_deadline($timeout);
    while (1) {
        my $f = $self->_recv_frame_by($deadline);
        return () if !$f || $f->{eof};
        next if $self->_control($f);
        if ($f->{opcode} == OP_CLOSE) {
            @$self{qw(close_code close_reason)} =
                @$f{qw(close_code close_reason)};
            return @$f{qw(close_code close_reason)};
        }
        push @{ $self->{skipped} }, $f;
    }
}

# is_eof($timeout): true once the peer closed the TCP connection (FIN or
# RST); bytes received meanwhile stay in the buffer for recv_frame.
sub is_eof {
    my ($self, $timeout) = @_;
    my $deadline = $self->_deadline($timeout);
    while (!$self->{eof} && $self->{sock}) {
        defined $self->_read_more($deadline) or return 0;
    }
    return 1;
}

sub close {
    my ($self) = @_;
    my $sock = delete $self->{sock} or return;
    if ($self->{ssl}) {
        $sock->close(SSL_fast_shutdown => 1);
    } else {
        CORE::close($sock);
    }
}

# abortive close: SO_LINGER {1, 0} makes the kernel send a RST
sub shutdown_hard {
    my ($self) = @_;
    my $sock = delete $self->{sock} or return;
    setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    if ($self->{ssl}) {
        $sock->close(SSL_no_shutdown => 1);
    } else {
        CORE::close($sock);
    }
}

sub DESTROY {
    my ($self) = @_;
    $self->close if $self->{sock};
}

1;

__END__

=head1 NAME

Test::Nginx::WS - raw WebSocket client for nginx module tests

=head1 CONNECT OPTIONS

port (default $ENV{TEST_NGINX_SERVER_PORT}), host (127.0.0.1), path ('/'),
headers (arrayref of pairs or hashref), protocols (string or arrayref),
ssl, ssl_ca (CA file, enables verification), ssl_verify (force on/off),
ssl_hostname, timeout (5), key, version (13), method ('GET'), host_header,
extra_raw (bytes written right after the handshake in the same write),
pre_request (raw bytes of a keep-alive HTTP request sent first on the same
connection; its response is kept in {pre_response}),
no_key, no_upgrade, no_connection, no_version (omit those headers),
auto_pong (1).

The object is returned even when the handshake fails: status (0 when the
connection could not be made, see error), headers (lowercase keys), body
(non-101 response body), ok (101 and accept key verified), protocol.

=head1 FRAMES

send_frame($opcode, $payload, fin => 1, mask => 1, rsv => 0,
length_override => undef, mask_key => undef, len_bits => undef),
send_text, send_binary, send_ping, send_pong, send_close($code, $reason),
send_raw($bytes); all return true when the bytes were written.

recv_frame($t) -> {opcode, fin, rsv, masked, payload[, close_code,
close_reason]} | {eof => 1} | undef (timeout).
recv_message($t) joins fragments, answers pings (auto_pong) and records
them in {pings}, pongs in {pongs}; returns the close frame if one arrives.
recv_close($t) -> ($code, $reason); is_eof($t); close; shutdown_hard (RST).

Constants OP_CONT OP_TEXT OP_BINARY OP_CLOSE OP_PING OP_PONG, and the
functions encode_frame(%f), format_request($method, $target, \@headers,
$body, $version), flatten_headers($h) and the class method
http_exchange(request => $bytes, method, port, host, timeout, ssl, ...)
can be used directly.

=cut
