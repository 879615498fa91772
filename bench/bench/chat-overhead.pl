#!/usr/bin/perl
# The chat loop's own overhead: the latency of a chat message through
# nginx (one worker) minus the latency of the same LLM request sent to the
# fake LLM directly, both sequential on keep-alive connections (wrk -c1),
# for a plain answer and for a round with one tool call (2 LLM requests +
# tools/call on a scripted reverse server).
#
#   perl bench/chat-overhead.pl [seconds per run, default 10]
#
# Needs wrk, Debian's nginx and build/ngx_http_reverse_mcp_module.so.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use File::Path ();
use POSIX ();
use Time::HiRes ();
use Cpanel::JSON::XS ();
use Test::Nginx::FakeLLM;
use Test::Nginx::ReverseMCP;

my $secs = shift // 10;
my $repo = "$FindBin::Bin/..";
my $dir = "/tmp/chat-overhead.$$";
File::Path::make_path("$dir/logs", "$dir/conf");
my $J = Cpanel::JSON::XS->new->canonical;

sub port { IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp')->sockport }
my $llm = Test::Nginx::FakeLLM->start;
my $port = port();

open my $c, '>', "$dir/conf/nginx.conf" or die;
print $c <<"EOC";
load_module $repo/build/ngx_http_reverse_mcp_module.so;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    reverse_mcp_zone rmcp:4m;
    reverse_mcp_chat_zone chat:16m idle=1m max_history=4k;
    reverse_mcp_agent a1 {
        server s1 no_auth;
        llm provider=openai model=m base_url=@{[ $llm->url ]} stream=off;
    }
    reverse_mcp_agent a2 {
        server s1 no_auth;
        llm provider=openai model=m base_url=@{[ $llm->url ]} stream=on;
    }
    server {
        listen 127.0.0.1:$port;
        location /ws { reverse_mcp_connector a1; }
        location = /status { reverse_mcp_status; }
        location /chat { reverse_mcp_chat a1; }
        location /chat_stream { reverse_mcp_chat a2; }
    }
}
EOC
close $c;
system('/usr/sbin/nginx', '-p', "$dir/", '-c', 'conf/nginx.conf') == 0
    or die "nginx did not start\n";
Time::HiRes::sleep(0.3);

# a reverse server with echo, answering in a child process
my $srv = fork // die;
if (!$srv) {
    my $s = Test::Nginx::ReverseMCP->new(port => $port, name => 's1',
        via => 'header', tools => [ { name => 'echo', description => 'echo',
        inputSchema => { type => 'object' } } ]);
    $s->connect == 101 or POSIX::_exit(1);
    $s->pump(1) while !$s->{closed};
    POSIX::_exit(0);
}
Time::HiRes::sleep(1);

sub wrk {
    my ($url, $body) = @_;
    open my $l, '>', "$dir/post.lua" or die;
    my $b = $body =~ s/\\/\\\\/gr =~ s/"/\\"/gr;
    print $l qq{wrk.method = "POST"\nwrk.body = "$b"\n}
           . qq{wrk.headers["Content-Type"] = "application/json"\n};
    close $l;
    my $out = `wrk -t1 -c1 -d${secs}s --latency -s $dir/post.lua $url 2>&1`;
    my ($n) = $out =~ /(\d+) requests in/;
    my ($avg, $unit) = $out =~ /Latency\s+([\d.]+)(us|ms|s)/;
    $avg *= { us => 0.001, ms => 1, s => 1000 }->{$unit};
    my ($p99, $u99) = $out =~ /99%\s+([\d.]+)(us|ms|s)/;
    $p99 *= { us => 0.001, ms => 1, s => 1000 }->{$u99};
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    die "errors: $out" if $non2xx;
    return ($avg, $p99, $n);
}

# what nginx sends the LLM for a one-message chat, to replay it directly
sub llm_body {
    my ($path, $msg) = @_;
    $llm->reset;
    system('curl', '-s', '-o', '/dev/null', "http://127.0.0.1:$port$path",
           '-H', 'Content-Type: application/json', '-d',
           $J->encode({ message => $msg }));
    return [ map { $J->encode($_->{body}) } $llm->requests ];
}

my @rows;
for my $case ([ 'plain answer, LLM not streamed', '/chat', 'hello' ],
              [ 'plain answer, LLM streamed (SSE)', '/chat_stream', 'hello' ],
              [ 'one tool round (2 LLM requests + tools/call)', '/chat',
                'use echo' ]) {
    my ($label, $path, $msg) = @$case;
    my $bodies = llm_body($path, $msg);
    my $direct = 0;
    for my $b (@$bodies) {
        my ($avg) = wrk($llm->url . '/chat/completions', $b);
        $direct += $avg;
    }
    $llm->reset;
    my ($avg, $p99, $n) = wrk("http://127.0.0.1:$port$path",
                              $J->encode({ message => $msg }));
    push @rows, sprintf "%-46s %8.2f ms %8.2f ms %8.2f ms %8.2f ms %7d",
        $label, $avg, $p99, $direct, $avg - $direct, $n;
}

print "case                                            chat avg  chat p99"
    . "  LLM direct  overhead  messages\n";
print "$_\n" for @rows;

kill 'TERM', $srv;
waitpid $srv, 0;
system('/usr/sbin/nginx', '-p', "$dir/", '-c', 'conf/nginx.conf', '-s',
       'stop');
$llm->stop;
File::Path::remove_tree($dir);
