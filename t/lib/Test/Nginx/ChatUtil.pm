package Test::Nginx::ChatUtil;

# Helpers of the chat tests (t/020-chat*.t): HTTP requests on a
# non-blocking socket that pump scripted reverse servers while nginx works
# (a chat message makes nginx call their tools), SSE parsing with event
# names, reverse servers with an exec_cmd tool like the seed's.
#
#   my $s = exec_server(name => 's1');            # connected, registered
#   my $r = chat(msg => { message => 'run ls -l /' }, servers => [$s]);
#   $r->{status}, $r->{json}{answer}, $r->{events} ([{ event, data }])
#
# Everything is exported into the caller (test_code runs in package main).

use strict;
use warnings;

use IO::Socket::INET ();
use IO::Select ();
use Time::HiRes ();
use Cpanel::JSON::XS ();
use Test::Nginx::ReverseMCP ();

use Exporter 'import';
our @EXPORT = qw(chat chat_start chat_poll chat_finish parse_response
                 up exec_server exec_tool tool enc dec slurp_file);

my $J = Cpanel::JSON::XS->new->utf8->canonical->allow_nonref;

sub enc { $J->encode($_[0]) }
sub dec { $J->decode($_[0]) }

sub slurp_file {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return scalar <$fh>;
}

sub tool {
    my ($name, %more) = @_;
    return { name => $name, description => "tool $name",
             inputSchema => { type => 'object' }, %more };
}

sub exec_tool {
    return { name => 'exec_cmd',
             description => 'Execute a shell command and return its output',
             inputSchema => { type => 'object', properties => {
                 command => { type => 'string',
                              description => 'the command line' },
                 working_dir => { type => 'string' } },
                 required => ['command'] } };
}

# a scripted reverse server, connected and registered, or die
sub up {
    my (%o) = @_;
    my $agent = delete $o{agent} // 'a1';
    my $s = Test::Nginx::ReverseMCP->new(
        port => $ENV{TEST_NGINX_SERVER_PORT}, token => 't',
        tools => [ tool('echo') ], %o);
    my $st = $s->connect;
    die "$o{name}: handshake status $st\n" unless $st == 101;
    die "$o{name}: MCP handshake did not complete\n"
        unless $s->handshake(5);
    Test::Nginx::Socket::wait_until(sub {
        my $j = Test::Nginx::Socket::status_json();
        my ($a) = grep { $_->{name} eq $agent } @{ $j->{agents} };
        return grep { $_->{name} eq $o{name} } @{ $a->{servers} || [] };
    }, 3, 0.01) or die "$o{name}: not registered after 3 s\n";
    return $s;
}

# the seed's reverse server: exec_cmd runs "sh -c COMMAND" for real (its
# last output in $s->{last_output})
sub exec_server {
    my (%o) = @_;
    return up(tools => [ exec_tool(), tool('echo') ], on_request => sub {
        my ($s, $msg) = @_;
        return undef unless $msg->{method} eq 'tools/call'
                            && $msg->{params}{name} eq 'exec_cmd';
        my $cmd = $msg->{params}{arguments}{command} // '';
        open(my $fh, '-|', 'sh', '-c', "$cmd 2>&1") or die "sh: $!\n";
        my $out = do { local $/; <$fh> } // '';
        close $fh;
        $s->{last_output} = $out;
        return { content => [ { type => 'text', text => $out } ],
                 isError => $? ? \1 : \0 };
    }, %o);
}

# Starts a request on a non-blocking socket ("Connection: close").
# %o: method (POST), path (/chat), msg (JSON-encoded) or raw, sse (Accept:
# text/event-stream), content_type, headers => [..], port, servers => [..]
sub chat_start {
    my (%o) = @_;
    my $method = $o{method} // 'POST';
    my $body = exists $o{raw} ? $o{raw}
             : defined $o{msg} ? $J->encode($o{msg}) : '';
    my @h = (Host => 'localhost');
    if ($method eq 'POST') {
        push @h, 'Content-Type' => $o{content_type} // 'application/json';
    }
    push @h, Accept => 'text/event-stream' if $o{sse};
    push @h, @{ $o{headers} || [] };
    my $req = "$method " . ($o{path} // '/chat') . " HTTP/1.1\r\n";
    for (my $i = 0; $i < @h; $i += 2) {
        $req .= "$h[$i]: $h[$i + 1]\r\n";
    }
    $req .= "Content-Length: " . length($body) . "\r\n"
            if length $body || $method eq 'POST';
    $req .= "Connection: close\r\n\r\n$body";

    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $o{port} // $ENV{TEST_NGINX_SERVER_PORT}, Timeout => 5)
        or die "connect: $!\n";
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($sock, $req, length($req) - $off, $off);
        die "write: $!\n" unless defined $n;
        $off += $n;
    }
    $sock->blocking(0);
    return { sock => $sock, buf => '', eof => 0, t0 => Time::HiRes::time(),
             servers => $o{servers} || [] };
}

# reads what came, pumping the servers, until $until->($buf) or EOF or
# $timeout; true when $until (or EOF without $until) happened
sub chat_poll {
    my ($h, $timeout, $until) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 10);
    my $sel = IO::Select->new($h->{sock});
    while (1) {
        return 1 if $until && $until->($h->{buf});
        return !$until if $h->{eof};
        return 0 if Time::HiRes::time() > $deadline;
        $_->pump(0.005) for grep { !$_->{closed} } @{ $h->{servers} };
        next unless $sel->can_read(@{ $h->{servers} } ? 0.005 : 0.05);
        my $n = sysread($h->{sock}, $h->{buf}, 65536, length $h->{buf});
        $h->{eof} = 1 if defined $n && $n == 0;
        $h->{eof} = 1 if !defined $n && !$!{EAGAIN} && !$!{EWOULDBLOCK};
    }
}

sub chat_finish {
    my ($h, $timeout) = @_;
    chat_poll($h, $timeout // 15);
    close $h->{sock};
    my $r = parse_response($h->{buf});
    $r->{time} = Time::HiRes::time() - $h->{t0};
    return $r;
}

sub chat { return chat_finish(chat_start(@_), 15) }

# { status, headers (lowercase), body, json, events => [{ event, data }] }
sub parse_response {
    my ($buf) = @_;
    my %r = (status => 0, headers => {}, body => '', raw => $buf);
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    return \%r unless defined $head && $head =~ m{^HTTP/1\.\d (\d+)};
    $r{status} = $1;
    for my $line (split /\r\n/, $head) {
        next unless $line =~ /^([^:]+):\s*(.*)$/;
        $r{headers}{ lc $1 } = $2;
    }
    $body //= '';
    if (($r{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $out .= substr($body, 0, $len, '');
            $body =~ s/^\r\n//;
        }
        $r{complete} = 1 if $body eq '' || $body eq "\r\n";
        $body = $out;
    }
    $r{body} = $body;
    my $ct = $r{headers}{'content-type'} // '';
    if ($ct =~ m{^application/json}) {
        $r{json} = eval { $J->decode($body) };
    } elsif ($ct =~ m{^text/event-stream}) {
        $r{events} = [];
        for my $ev (split /\n\n/, $body) {
            my ($name) = $ev =~ /^event: (.*)$/m;
            my $data = join "\n", map { /^data: ?(.*)$/ ? $1 : () }
                                  split /\n/, $ev;
            next unless length $data;
            push @{ $r{events} }, { event => $name // 'message',
                data => eval { $J->decode($data) } // { invalid => $data } };
        }
        $r{json} = @{ $r{events} } ? $r{events}[-1]{data} : undef;
    }
    return \%r;
}

1;
