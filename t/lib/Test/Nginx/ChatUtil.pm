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

use Time::HiRes ();
use Test::Nginx::ReverseMCP ();
use Test::Nginx::MCP qw(enc dec tool up);

use Exporter 'import';
our @EXPORT = qw(chat chat_start chat_poll chat_finish parse_response
                 up exec_server exec_tool tool enc dec slurp_file);

my $J = $Test::Nginx::MCP::J;

sub slurp_file { Test::Nginx::MCP::slurp(@_) }

sub exec_tool {
    return { name => 'exec_cmd',
             description => 'Execute a shell command and return its output',
             inputSchema => { type => 'object', properties => {
                 command => { type => 'string',
                              description => 'the command line' },
                 working_dir => { type => 'string' } },
                 required => ['command'] } };
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

# Starts a request on a non-blocking socket ("Connection: close"), with
# mcp_start() of Test::Nginx::MCP.  %o: method (POST), path (/chat), msg
# (JSON-encoded) or raw, sse (Accept: text/event-stream), content_type,
# headers => [..], port, servers => [..]
sub chat_start {
    my (%o) = @_;
    my $sse = delete $o{sse};
    my $h = Test::Nginx::MCP::mcp_start(host => 'localhost',
        path => '/chat', %o,
        accept => $sse ? 'text/event-stream' : undef);
    $h->{t0} = Time::HiRes::time();
    return $h;
}

sub chat_poll {
    my ($h, $timeout, $until) = @_;
    return Test::Nginx::MCP::mcp_poll($h, $timeout // 10, $until);
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
    my $r = Test::Nginx::MCP::parse_http($buf);
    my $ct = $r->{headers}{'content-type'} // '';
    if ($ct =~ m{^application/json}) {
        $r->{json} = eval { $J->decode($r->{body}) };
    } elsif ($ct =~ m{^text/event-stream}) {
        $r->{events} = [ map { { event => $_->{event},
                                 data => eval { $J->decode($_->{data}) }
                                         // { invalid => $_->{data} } } }
                         Test::Nginx::MCP::sse_events($r->{body}) ];
        $r->{json} = @{ $r->{events} } ? $r->{events}[-1]{data} : undef;
    }
    return $r;
}

1;
