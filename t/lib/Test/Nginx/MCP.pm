package Test::Nginx::MCP;

# Helpers of the MCP endpoint tests (t/007, t/008, t/011-t/016 ...): HTTP
# requests on a non-blocking socket that pump scripted reverse servers
# (t/lib/Test/Nginx/ReverseMCP.pm) while nginx works, since a request that
# makes nginx call a reverse server needs the test to answer on that
# server's socket while the request is in flight; response parsing (JSON or
# SSE, chunked or not); sessions; 2026-07-28 requests; node children.
#
#   my $s = up(name => 's1');                    # connected, registered
#   my $sid = session();                         # initialize + initialized
#   my $r = mcp(session => $sid, msg => req(1, 'tools/list'),
#               servers => [$s]);
#   $r->{status}, $r->{headers}{...}, $r->{json}, $r->{events}
#
# Everything is exported into the caller (test_code runs in package main).

use strict;
use warnings;

use Cwd ();
use File::Basename ();
use IO::Socket::INET ();
use IO::Select ();
use POSIX ();
use Time::HiRes ();
use Cpanel::JSON::XS ();
use Test::Nginx::ReverseMCP ();

use Exporter 'import';
our @EXPORT = qw(enc dec tool up mcp_start mcp_poll mcp_finish mcp
                 worker_socket
                 parse_http sse_events parse_response events_of req session names modern
                 node_start node_wait node_gone node_kill slurp
                 demo_server entry wait_entry
                 $J $Node $NodeModules %Children);

our $J = Cpanel::JSON::XS->new->utf8->canonical->allow_nonref;

# node (Node 20) and the npm packages of package.json (make deps: npm ci)
our $Node = $ENV{TEST_NGINX_NODE}
            // (-x '/usr/bin/node' ? '/usr/bin/node' : 'node');
our $NodeModules = $ENV{TEST_NGINX_NODE_MODULES}
    // Cwd::abs_path(File::Basename::dirname(__FILE__) . '/../../../..')
       . '/node_modules';
our %Children;                  # pid => log file of node_start()'s children

END {
    kill 'KILL', keys %Children;
    waitpid $_, 0 for keys %Children;
}

sub repo_root { no warnings 'once'; $Test::Nginx::Socket::RepoRoot }
sub port { no warnings 'once'; $Test::Nginx::Socket::ServerPort }

sub enc { $J->encode($_[0]) }
sub dec { $J->decode($_[0]) }

sub tool {
    my ($name, %more) = @_;
    return { name => $name, description => "tool $name",
             inputSchema => { type => 'object' }, %more };
}

# a scripted reverse server, connected and handshaken, registered under
# agent $o{agent} (a1), or die; worker => PID / not_worker => PID: on
# that worker (or on another one, like worker_socket()); port: of the
# connector and the status page
sub up {
    my (%o) = @_;
    my $agent = delete $o{agent} // 'a1';
    my ($on, $not_on) = (delete $o{worker}, delete $o{not_worker});
    my ($s, $st);
    for my $try (1 .. 40) {
        my $pre = defined $on || defined $not_on;
        $s = Test::Nginx::ReverseMCP->new(port => port(), token => 't',
            tools => [ tool('echo') ], %o, $pre ? (ws_opts => {
                pre_request => "GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n",
                %{ $o{ws_opts} || {} } }) : ());
        $st = $s->connect;
        last unless $pre;
        my $r = $s->ws->{pre_response}
            or die "$o{name}: no answer to GET /status\n";
        my $pid = $J->decode($r->{body})->{pid};
        last if defined $on ? $pid == $on : $pid != $not_on;
        $s->disconnect;
        undef $s;
    }
    die "$o{name}: no connection landed on the wanted worker in 40 "
        . "tries\n" unless $s;
    die "$o{name}: handshake status $st\n" unless $st == 101;
    die "$o{name}: MCP handshake did not complete\n"
        unless $s->handshake(5);
    # registered once the gateway has processed the tools/list answer
    Test::Nginx::Socket::wait_until(sub {
        my $j = Test::Nginx::Socket::status_json(undef,
                    $o{port} ? (port => $o{port}) : ());
        my ($a) = grep { $_->{name} eq $agent } @{ $j->{agents} };
        return grep { $_->{name} eq $o{name} } @{ $a->{servers} || [] };
    }, 3, 0.01) or die "$o{name}: not registered after 3 s\n";
    return $s;
}

# A connection held by nginx worker $pid (blocking), or with not => 1 by
# any other worker: each try sends GET /status on a keep-alive connection
# first (the configuration needs "location = /status {
# reverse_mcp_status; }"), whose "pid" says which worker holds it; dies
# after 40 tries.  %o: not, port
sub worker_socket {
    my ($pid, %o) = @_;
    for my $try (1 .. 40) {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                         PeerPort => $o{port} // port(),
                                         Timeout => 5)
            or die "connect: $!\n";
        print $sock "GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n";
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) {
            sysread($sock, $buf, 65536, length $buf) or last;
        }
        my ($len) = $buf =~ /^Content-Length:\s*(\d+)/mi;
        die "GET /status: no Content-Length\n" unless defined $len;
        my $want = index($buf, "\r\n\r\n") + 4 + $len;
        while (length $buf < $want) {
            sysread($sock, $buf, $want - length $buf, length $buf) or last;
        }
        my $j = eval { $J->decode(substr $buf, index($buf, "\r\n\r\n") + 4) };
        return $sock if $j && ($o{not} ? $j->{pid} != $pid
                                       : $j->{pid} == $pid);
        close $sock;
    }
    die "no connection landed on " . ($o{not} ? 'a worker other than '
                                               : 'worker ')
        . "$pid in 40 tries\n";
}

# Starts an HTTP request on a non-blocking socket ("Connection: close").
# %o: method (POST), path (/mcp), msg (encoded as JSON) or raw (the body),
# session, version (MCP-Protocol-Version), accept (undef: none),
# content_type, host, port, headers => [ name => value, ... ],
# servers => [ reverse servers to pump ], worker => pid of the nginx
# worker that must serve it, or not_worker => pid of one that must not
# (worker_socket())
sub mcp_start {
    my (%o) = @_;
    my $method = $o{method} // 'POST';
    my $body = exists $o{raw} ? $o{raw}
             : defined $o{msg} ? $J->encode($o{msg}) : '';
    my @h = (Host => $o{host} // 'localhost:' . port());
    if ($method eq 'POST') {
        push @h, 'Content-Type' => $o{content_type} // 'application/json';
        push @h, Accept => $o{accept} // 'application/json, text/event-stream'
            unless exists $o{accept} && !defined $o{accept};
    }
    push @h, 'Mcp-Session-Id' => $o{session} if defined $o{session};
    push @h, 'MCP-Protocol-Version' => $o{version} if defined $o{version};
    push @h, @{ $o{headers} || [] };
    my $req = "$method " . ($o{path} // '/mcp') . " HTTP/1.1\r\n";
    for (my $i = 0; $i < @h; $i += 2) {
        $req .= "$h[$i]: $h[$i + 1]\r\n";
    }
    $req .= "Content-Length: " . length($body) . "\r\n"
            if length $body || $method eq 'POST';
    $req .= "Connection: close\r\n\r\n$body";

    my $sock = defined $o{worker} || defined $o{not_worker}
             ? worker_socket($o{worker} // $o{not_worker},
                             not => defined $o{not_worker}, port => $o{port})
             : IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $o{port} // port(),
                                     Timeout => 5)
        or die "connect: $!\n";
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($sock, $req, length($req) - $off, $off);
        die "write: $!\n" unless defined $n;
        $off += $n;
    }
    $sock->blocking(0);
    return { sock => $sock, buf => '', eof => 0,
             servers => $o{servers} || [] };
}

# reads what came, pumping the servers, until $until->($buf) or EOF or
# $timeout (times TEST_NGINX_TIMEOUT_SCALE); true when $until (or EOF
# without $until) happened
sub mcp_poll {
    my ($h, $timeout, $until) = @_;
    my $deadline = Time::HiRes::time()
                   + ($timeout // 5) * Test::Nginx::Socket::timeout_scale();
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

# the whole response: { status, headers (lowercase), body, json, events }
sub mcp_finish {
    my ($h, $timeout) = @_;
    mcp_poll($h, $timeout // 5);
    close $h->{sock};
    return parse_response($h->{buf});
}

sub mcp { return mcp_finish(mcp_start(@_), 10) }

# status, headers (lowercase; repeated ones joined with ", "), body
# (de-chunked; complete => 1 once the last chunk came)
sub parse_http {
    my ($buf) = @_;
    my %r = (status => 0, headers => {}, body => '', raw => $buf);
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    return \%r unless defined $head && $head =~ m{^HTTP/1\.\d (\d+)};
    $r{status} = $1;
    for my $line (split /\r\n/, $head) {
        next unless $line =~ /^([^:]+):\s*(.*)$/;
        my $k = lc $1;
        $r{headers}{$k} = exists $r{headers}{$k}
                          ? "$r{headers}{$k}, $2" : $2;
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
    return \%r;
}

# the SSE events of a body: [{ event (message), data (raw text) }]
sub sse_events {
    my ($body) = @_;
    my @ev;
    for my $ev (split /\n\n/, $body) {
        my ($name) = $ev =~ /^event: (.*)$/m;
        my $data = join "\n", map { /^data: ?(.*)$/ ? $1 : () }
                              split /\n/, $ev;
        next unless length $data;
        push @ev, { event => $name // 'message', data => $data };
    }
    return @ev;
}

# parse_http() plus json (the body's, or the last event's) and events (the
# decoded data of each SSE event)
sub parse_response {
    my ($buf) = @_;
    my $r = parse_http($buf);
    my $ct = $r->{headers}{'content-type'} // '';
    if ($ct =~ m{^application/json}) {
        $r->{json} = eval { $J->decode($r->{body}) };
    } elsif ($ct =~ m{^text/event-stream}) {
        $r->{events} = [ map { eval { $J->decode($_->{data}) }
                               // { invalid => $_->{data} } }
                         sse_events($r->{body}) ];
        $r->{json} = $r->{events}[-1];
    }
    return $r;
}

# the JSON "data:" lines of a raw (possibly unfinished) SSE response
sub events_of {
    my ($buf) = @_;
    my (undef, $body) = split /\r\n\r\n/, $buf, 2;
    my @ev;
    for my $line (split /\n/, $body // '') {
        push @ev, (eval { $J->decode($1) } // { invalid => $1 })
            if $line =~ /^data: ?(\{.*\})\r?$/;
    }
    return @ev;
}

sub req {
    my ($id, $method, $params) = @_;
    return { jsonrpc => '2.0', id => $id, method => $method,
             defined $params ? (params => $params) : () };
}

# initialize + notifications/initialized; returns the session id;
# %o: path (/mcp), version (2025-06-18), capabilities ({}), port
sub session {
    my (%o) = @_;
    my $r = mcp(path => $o{path} // '/mcp', port => $o{port},
                msg => req(0, 'initialize', {
        protocolVersion => $o{version} // '2025-06-18',
        capabilities => $o{capabilities} // {},
        clientInfo => { name => 't', version => '1' } }));
    die "initialize: $r->{status} $r->{body}\n" unless $r->{status} == 200;
    my $sid = $r->{headers}{'mcp-session-id'}
        or die "initialize: no Mcp-Session-Id\n";
    my $n = mcp(path => $o{path} // '/mcp', port => $o{port},
                session => $sid, msg => { jsonrpc => '2.0',
                         method => 'notifications/initialized' });
    die "initialized: $n->{status}\n" unless $n->{status} == 202;
    return $sid;
}

sub names { [ map { $_->{name} } @{ $_[0]{json}{result}{tools} || [] } ] }

# The arguments of mcp() for a 2026-07-28 request: _meta in the body, the
# metadata headers.  %o: meta => { more _meta }, no_meta, body_version,
# capabilities (clientCapabilities, {}), version (the header and the
# _meta version, 2026-07-28; undef: no header), method_header, name_header
# (undef: none); other keys go to mcp_start
sub modern {
    my ($id, $method, $params, %o) = @_;
    my $v = '2026-07-28';
    $params = { %{ $params || {} } };
    unless (delete $o{no_meta}) {
        $params->{_meta} = {
            'io.modelcontextprotocol/protocolVersion'
                => exists $o{body_version} ? delete $o{body_version} : $v,
            'io.modelcontextprotocol/clientCapabilities'
                => delete $o{capabilities} // {},
            'io.modelcontextprotocol/clientInfo'
                => { name => 't', version => '1' },
            %{ delete $o{meta} || {} } };
    }
    my @h;
    my $mh = exists $o{method_header} ? delete $o{method_header} : $method;
    push @h, 'Mcp-Method' => $mh if defined $mh;
    my $name = $params->{name} // $params->{uri};
    my $nh = exists $o{name_header} ? delete $o{name_header} : $name;
    push @h, 'Mcp-Name' => $nh if defined $nh;
    my $version = exists $o{version} ? delete $o{version} : $v;
    my $msg = { jsonrpc => '2.0', method => $method, params => $params,
                defined $id ? (id => $id) : () };
    return (msg => $msg, version => $version,
            headers => [ @h, @{ delete $o{headers} || [] } ], %o);
}

# starts "node @args" from the repository root (or from $o->{cwd} when
# the first argument is a hash { cwd }); output to $log
sub node_start {
    my ($log, @args) = @_;
    my $o = ref $args[0] eq 'HASH' ? shift @args : {};
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        chdir($o->{cwd} // repo_root()) or POSIX::_exit(126);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        no warnings 'exec';
        exec { $Node } $Node, @args;
        print STDERR "exec $Node: $!\n";
        POSIX::_exit(127);
    }
    $Children{$pid} = $log;
    return $pid;
}

# its exit status once it exited within $timeout, else undef
sub node_wait {
    my ($pid, $timeout) = @_;
    my $st;
    Test::Nginx::Socket::wait_until(sub {
        my $w = waitpid($pid, POSIX::WNOHANG());
        $st = $? if $w == $pid;
        return $w == $pid;
    }, $timeout, 0.05) or return undef;
    delete $Children{$pid};
    return $st >> 8;
}

# true once the child exited (reaped)
sub node_gone {
    my ($pid) = @_;
    return 1 unless $Children{$pid};
    return 0 unless waitpid($pid, POSIX::WNOHANG()) == $pid;
    delete $Children{$pid};
    return 1;
}

sub node_kill {
    my ($pid, $sig) = @_;
    kill $sig // 'KILL', $pid;
    Test::Nginx::Socket::wait_until(sub { node_gone($pid) }, 5, 0.02);
}

# tools/demo-reverse-server.mjs (the official SDK's McpServer with the demo
# tools echo, add, time, system_info) dialling in as $o{name}; %o: name,
# token, args => [ more arguments ]
sub demo_server {
    my ($log, %o) = @_;
    return node_start($log, 'tools/demo-reverse-server.mjs',
        '--url', 'ws://127.0.0.1:' . port() . '/ws',
        '--name', $o{name}, '--token', $o{token}, @{ $o{args} || [] });
}

# the status entry of server $name of agent $agent (a1), or undef
sub entry {
    my ($name, $j, $agent) = @_;
    $j //= Test::Nginx::Socket::status_json();
    my ($a) = grep { $_->{name} eq ($agent // 'a1') } @{ $j->{agents} };
    my ($e) = grep { $_->{name} eq $name } @{ $a->{servers} };
    return $e;
}

# the entry of $name once registered; node may take a while to start
sub wait_entry {
    my ($name, $log) = @_;
    my $e;
    return $e if Test::Nginx::Socket::wait_until(sub { $e = entry($name) },
                                                 15, 0.05);
    Test::More::diag("$name did not register; its output:\n" . slurp($log));
    return undef;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return scalar <$fh>;
}

1;
