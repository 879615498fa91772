package Test::Nginx::ReverseMCP;

# A scripted "reverse MCP server": it dials in over WebSocket (via
# Test::Nginx::WS) and answers the gateway's MCP client requests.  Single
# process and blocking with timeouts, so several instances can be driven
# from one test by polling each in turn.
#
#   my $s = Test::Nginx::ReverseMCP->new(port => $port, name => 'srv1',
#       token => 't', tools => [ { name => 'echo', description => 'Echo',
#           inputSchema => { type => 'object' } } ]);
#   is $s->connect, 101;
#   ok $s->handshake(5);          # initialize + initialized + tools/list
#   $s->pump(1);                  # answer whatever comes for 1 s
#   $s->set_tools([...]); $s->notify('notifications/tools/list_changed');
#   ok $s->pump_until(sub { $s->{tools_list_count} >= 2 }, 5);
#   my $id = $s->request('ping'); my $resp = $s->wait_response($id, 2);
#   hold => ['slow']: tools/call of "slow" is not answered; its id goes to
#   $s->{held} and the test answers with $s->respond($id, $result)
#
# Everything received is recorded in $s->{received} (decoded messages, or
# { invalid => $text } for non-JSON); everything sent in $s->{sent}.

use strict;
use warnings;

use Cpanel::JSON::XS ();
use Time::HiRes qw(time);
use Test::Nginx::WS ();

my $JSON = Cpanel::JSON::XS->new->utf8->canonical->allow_nonref;

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        port             => $ENV{TEST_NGINX_SERVER_PORT},
        host             => '127.0.0.1',
        path             => '/ws',
        name             => undef,
        token            => undef,
        via              => 'both',     # 'header', 'query', 'both', 'none'
        protocols        => undef,
        headers          => [],         # extra handshake headers
        newline          => 1,          # append "\n" to every frame
        protocol_version => '2025-06-18',
        tools            => [],
        page_size        => 0,
        capabilities     => { tools => { listChanged => \1 } },
        server_info      => { name => 'fake', version => '1' },
        instructions     => undef,
        on_request       => undef,
        hold             => undef,      # tools/call names not answered
        close_reply      => 1,          # echo the gateway's close frame
        timeout          => 5,
        ws_opts          => {},         # passed through to WS->connect
        %o,

        ws               => undef,
        received         => [],
        sent             => [],
        notifications    => [],
        responses        => {},
        init_params      => undef,
        init_count       => 0,
        initialized      => 0,
        tools_list_count => 0,
        held             => [],         # ids of held tools/call
        next_id          => 1,
        closed           => 0,
    }, $class;
    return $self;
}

sub ws { $_[0]{ws} }

sub _uri_escape {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

# WebSocket handshake; returns the HTTP status (101 on success).
sub connect {
    my ($self) = @_;
    my $via = $self->{via};
    my $path = $self->{path};
    my @headers = @{ $self->{headers} };

    if ($via eq 'query' || $via eq 'both') {
        my @q;
        push @q, 'server_name=' . _uri_escape($self->{name})
            if defined $self->{name};
        push @q, 'token=' . _uri_escape($self->{token})
            if defined $self->{token};
        $path .= ($path =~ /\?/ ? '&' : '?') . join('&', @q) if @q;
    }
    if ($via eq 'header' || $via eq 'both') {
        push @headers, 'X-MCP-Server-Name' => $self->{name}
            if defined $self->{name};
        push @headers, Authorization => "Bearer $self->{token}"
            if defined $self->{token};
    }

    $self->{closed} = 0;
    $self->{ws} = Test::Nginx::WS->connect(
        port => $self->{port}, host => $self->{host}, path => $path,
        headers => \@headers, protocols => $self->{protocols},
        timeout => $self->{timeout},
        map({ defined $self->{$_} ? ($_ => $self->{$_}) : () }
            qw(ssl ssl_ca ssl_verify ssl_hostname)),
        %{ $self->{ws_opts} },
    );
    $self->{closed} = 1 unless $self->{ws}->ok;
    return $self->{ws}->status;
}

# ----- sending -----

sub send_json {
    my ($self, $msg) = @_;
    push @{ $self->{sent} }, $msg;
    return $self->send_text($JSON->encode($msg));
}

# a raw text frame (newline appended when 'newline' is on)
sub send_text {
    my ($self, $text) = @_;
    my $ws = $self->{ws} or return 0;
    $text .= "\n" if $self->{newline};
    return $ws->send_text($text);
}

sub notify {
    my ($self, $method, $params) = @_;
    return $self->send_json({ jsonrpc => '2.0', method => $method,
                              defined $params ? (params => $params) : () });
}

# sends a request; returns its id
sub request {
    my ($self, $method, $params) = @_;
    my $id = $self->{next_id}++;
    $self->send_json({ jsonrpc => '2.0', id => $id, method => $method,
                       defined $params ? (params => $params) : () });
    return $id;
}

sub respond {
    my ($self, $id, $result) = @_;
    return $self->send_json({ jsonrpc => '2.0', id => $id,
                              result => $result });
}

sub respond_error {
    my ($self, $id, $code, $message, $data) = @_;
    return $self->send_json({ jsonrpc => '2.0', id => $id, error => {
        code => $code, message => $message,
        defined $data ? (data => $data) : () } });
}

sub set_tools {
    my ($self, $tools) = @_;
    $self->{tools} = $tools;
}

# WebSocket close frame (code, reason) / TCP close / TCP RST
sub close {
    my ($self, $code, $reason) = @_;
    my $ws = $self->{ws} or return 0;
    return $ws->send_close($code // 1000, $reason // '');
}

sub disconnect {
    my ($self, $hard) = @_;
    my $ws = $self->{ws} or return;
    $hard ? $ws->shutdown_hard : $ws->close;
    $self->{closed} = 1;
}

# ----- receiving -----

# Processes incoming messages until $cond->() is true, the connection is
# closed, or $timeout expires.  Returns true iff $cond became true.
sub pump_until {
    my ($self, $cond, $timeout) = @_;
    my $deadline = time + ($timeout // $self->{timeout})
                          * Test::Nginx::WS::timeout_scale();
    while (1) {
        return 1 if $cond && $cond->();
        return 0 if $self->{closed} || !$self->{ws};
        my $left = $deadline - time;
        return 0 if $left <= 0;
        # recv_message scales its timeout again: hand it the unscaled rest
        $self->_receive($left / Test::Nginx::WS::timeout_scale());
    }
}

# Processes incoming messages for $timeout seconds (returns early when the
# connection closes).  Returns the number of JSON-RPC messages handled.
sub pump {
    my ($self, $timeout) = @_;
    my $before = @{ $self->{received} };
    $self->pump_until(undef, $timeout);
    return @{ $self->{received} } - $before;
}

# Answers initialize, expects notifications/initialized, answers tools/list
# pages; true once the last tools/list page was answered (0 on timeout or
# close).
sub handshake {
    my ($self, $timeout) = @_;
    my $lists = $self->{tools_list_count};
    return $self->pump_until(sub {
        $self->{initialized} && $self->{tools_list_count} > $lists
    }, $timeout) ? 1 : 0;
}

sub wait_response {
    my ($self, $id, $timeout) = @_;
    $self->pump_until(sub { exists $self->{responses}{$id} }, $timeout);
    return $self->{responses}{$id};
}

# received messages with the given method (requests and notifications)
sub received {
    my ($self, $method) = @_;
    return grep { ($_->{method} // '') eq $method } @{ $self->{received} };
}

sub _receive {
    my ($self, $timeout) = @_;
    my $m = $self->{ws}->recv_message($timeout) or return;    # timeout

    if ($m->{eof}) {
        $self->{closed} = 1;
        $self->{eof} = 1;
        return;
    }
    if ($m->{opcode} == Test::Nginx::WS::OP_CLOSE) {
        @$self{qw(close_code close_reason)} =
            @$m{qw(close_code close_reason)};
        $self->{closed} = 1;
        $self->{ws}->send_close($m->{close_code} == 1005
                                ? undef : $m->{close_code})
            if $self->{close_reply};
        return;
    }
    $self->_dispatch($_) for _decode($m->{payload});
}

# one frame may carry one JSON value, or newline-separated values
sub _decode {
    my ($text) = @_;
    my $v = eval { $JSON->decode($text) };
    return ref $v eq 'ARRAY' ? @$v : ($v) if defined $v && !$@;
    my @out;
    for my $line (grep { /\S/ } split /\n/, $text) {
        my $d = eval { $JSON->decode($line) };
        push @out, $@ || !ref $d ? { invalid => $line }
                 : ref $d eq 'ARRAY' ? @$d : $d;
    }
    return @out ? @out : ({ invalid => $text });
}

sub _dispatch {
    my ($self, $msg) = @_;
    push @{ $self->{received} }, $msg;
    return if ref $msg ne 'HASH' || $msg->{invalid};

    if (!defined $msg->{method}) {                  # a response to us
        $self->{responses}{ $msg->{id} } = $msg if defined $msg->{id};
        return;
    }
    if (!exists $msg->{id}) {                       # a notification
        push @{ $self->{notifications} }, $msg;
        $self->{initialized}++
            if $msg->{method} eq 'notifications/initialized';
        return;
    }

    # hold => [ tool names ]: their calls are recorded in {held} (ids)
    # and not answered until the test calls respond()
    if ($self->{hold} && $msg->{method} eq 'tools/call'
        && grep { $_ eq ($msg->{params}{name} // '') } @{ $self->{hold} })
    {
        push @{ $self->{held} }, $msg->{id};
        return;
    }

    my $r = $self->{on_request} ? $self->{on_request}->($self, $msg) : undef;
    $r //= $self->_default_answer($msg);
    return if $r->{noreply};
    return $self->send_text($r->{raw}) if defined $r->{raw};
    return $self->send_json({ jsonrpc => '2.0', id => $msg->{id},
                              error => $r->{error} })
        if $r->{error};
    return $self->respond($msg->{id}, $r);
}

sub _default_answer {
    my ($self, $msg) = @_;
    my $method = $msg->{method};
    my $params = $msg->{params} || {};

    if ($method eq 'initialize') {
        $self->{init_params} = $params;
        $self->{init_count}++;
        return {
            protocolVersion => $self->{protocol_version},
            capabilities    => $self->{capabilities},
            serverInfo      => $self->{server_info},
            defined $self->{instructions}
                ? (instructions => $self->{instructions}) : (),
        };
    }
    if ($method eq 'tools/list') {
        return $self->_tools_page($params->{cursor});
    }
    if ($method eq 'ping') {
        return {};
    }
    if ($method eq 'tools/call' && ($params->{name} // '') eq 'echo') {
        my $text = ($params->{arguments} || {})->{text} // '';
        return { content => [ { type => 'text', text => $text } ] };
    }
    return { error => { code => -32601,
                        message => "Method not found: $method" } };
}

sub _tools_page {
    my ($self, $cursor) = @_;
    my @tools = @{ $self->{tools} };
    my $size = $self->{page_size} || @tools || 1;
    my $from = 0;
    if (defined $cursor) {
        ($from) = $cursor =~ /^c(\d+)$/
            or return { error => { code => -32602,
                                   message => "Invalid cursor: $cursor" } };
    }
    my $to = $from + $size;
    my %page = (tools => [ @tools[$from .. ($to > @tools ? @tools : $to) - 1] ]);
    if ($to < @tools) {
        $page{nextCursor} = "c$to";
    } else {
        $self->{tools_list_count}++;                # last page answered
    }
    return \%page;
}

1;

__END__

=head1 NAME

Test::Nginx::ReverseMCP - scripted reverse MCP server for gateway tests

=head1 OPTIONS (new)

port, host, path ('/ws'), name, token, via ('both' | 'header' | 'query' |
'none': how name/token are sent: X-MCP-Server-Name + Authorization: Bearer
headers and/or server_name= & token= query args), protocols, headers,
newline (1), protocol_version ('2025-06-18'), tools, page_size (0 = one
page), capabilities, server_info, instructions, on_request, close_reply,
ssl, ssl_ca, ssl_verify, ssl_hostname, timeout (5), ws_opts.

on_request => sub { my ($s, $msg) = @_; ... } returns undef (default
handling), a result hashref, { error => { code, message } },
{ noreply => 1 } (send nothing) or { raw => $text } (send a raw frame).

Default answers: initialize (params saved in {init_params}), tools/list
(paginated with nextCursor "cN" when page_size > 0), ping, tools/call of
'echo' (echoes arguments.text); anything else: error -32601.

=head1 STATE

{received} {sent} {notifications} {responses}{$id} {init_params}
{init_count} {initialized} {tools_list_count} {closed} {eof} {close_code}
{close_reason}; ws() gives the Test::Nginx::WS object.

=cut
