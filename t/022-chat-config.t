# Configuration of the chat: "llm", "llm_system" and "description" lines of
# reverse_mcp_agent, reverse_mcp_chat, reverse_mcp_a2a and
# reverse_mcp_chat_zone.  Every bad value is an [emerg] of nginx -t naming
# the directive and file:line; an API key is never echoed.

use lib 't/lib';
use Test::Nginx::Socket;

master_on();
workers(1);

run_tests();


sub conf_lines {
    my ($re) = @_;
    my $conf = "$ServRoot/conf/nginx.conf";
    open my $fh, '<', $conf or die "cannot read $conf: $!\n";
    my @n;
    while (my $l = <$fh>) {
        push @n, $. if $l =~ $re;
    }
    return @n;
}

# the first [emerg] of nginx -t is "$msg in <conf>:<line of $at>"; "%F" in
# $msg stands for "<conf>:<line>" when the message holds it itself
sub emerg {
    my ($msg, $at) = @_;
    my @lines = conf_lines($at);
    is(scalar @lines, 1, "one nginx.conf line matches $at")
        or return;
    my $where = "$ServRoot/conf/nginx.conf:$lines[0]";
    my $want = $msg =~ /%F/ ? $msg =~ s/%F/$where/r : "$msg in $where";
    my $out = error_log_since_start();
    my ($got) = $out =~ /\[emerg\] (?:\d+#\d+: )?(.*)$/m;
    is($got, $want, "[emerg] $msg (line $lines[0])")
        or diag("nginx -t output:\n$out");
}

__DATA__

=== TEST 1: llm without a provider
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm model=m;
}
--- must_die
--- test_code
main::emerg('"llm" needs provider=openai or provider=anthropic',
            qr/^\s*llm model=m;/);



=== TEST 2: an unknown provider
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=gemini model=m;
}
--- must_die
--- test_code
main::emerg('invalid "llm" provider "gemini": expected openai or anthropic',
            qr/provider=gemini/);



=== TEST 3: no model
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai;
}
--- must_die
--- test_code
main::emerg('"llm" needs model=', qr/provider=openai;/);



=== TEST 4: two keys
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m api_key=k1 api_key_env=K;
}
--- must_die
--- test_code
main::emerg('"llm" takes only one of api_key=, api_key_file= and '
            . 'api_key_env=', qr/api_key=k1/);



=== TEST 5: an unknown parameter: its value (maybe a key) is not echoed
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m apikey=sk-do-not-print-me;
}
--- must_die
--- test_code
main::emerg('invalid parameter "apikey=..." of "llm"', qr/apikey=/);
unlike(error_log_since_start(), qr/do-not-print-me/, 'the value is not shown');



=== TEST 6: base_url must be http(s)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m base_url=ftp://example.com/v1;
}
--- must_die
--- test_code
main::emerg('invalid "llm" base_url "ftp://example.com/v1": an http:// or '
            . 'https:// URL is required', qr/base_url=ftp/);



=== TEST 7: temperature
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m temperature=2.5;
}
--- must_die
--- test_code
main::emerg('invalid "llm" temperature "2.5": a number from 0 to 2 is '
            . 'required', qr/temperature=/);



=== TEST 8: max_rounds
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=anthropic model=m max_rounds=101;
}
--- must_die
--- test_code
main::emerg('invalid "llm" max_rounds "101": a number from 1 to 100 is '
            . 'required', qr/max_rounds=/);



=== TEST 9: timeout
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=anthropic model=m timeout=soon;
}
--- must_die
--- test_code
main::emerg('invalid "llm" timeout "soon": a time of at least 100ms is '
            . 'required', qr/timeout=soon/);



=== TEST 10: an api_key_file that does not exist
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m api_key_file=/nonexistent/llm.key;
}
--- must_die
--- test_code
main::emerg('cannot open "llm" api_key_file "/nonexistent/llm.key" '
            . '(2: No such file or directory)', qr/api_key_file=/);



=== TEST 11: two llm lines
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm provider=openai model=m;
    llm provider=anthropic model=m;
}
--- must_die
--- test_code
main::emerg('duplicate "llm" in reverse_mcp_agent "a1"',
            qr/provider=anthropic/);



=== TEST 12: llm_system takes one text
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    llm_system You are helpful;
}
--- must_die
--- test_code
main::emerg('"llm_system" takes one (quoted) text', qr/llm_system/);



=== TEST 13: reverse_mcp_chat of an unknown agent
--- http_config
reverse_mcp_zone rmcp:1m;
--- config
location /chat { reverse_mcp_chat nope; }
--- must_die
--- test_code
main::emerg('unknown agent "nope" in %F (define it with "reverse_mcp_agent '
            . 'nope { ... }")', qr/reverse_mcp_chat nope/);



=== TEST 14: reverse_mcp_chat of an agent without llm
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /chat { reverse_mcp_chat a1; }
--- must_die
--- test_code
main::emerg('agent "a1" has no "llm" line (the model the chat uses) in %F',
            qr/reverse_mcp_chat a1/);



=== TEST 15: reverse_mcp_chat without reverse_mcp_zone
--- http_config
reverse_mcp_agent a1 { llm provider=openai model=m; }
--- config
location /chat { reverse_mcp_chat a1; }
--- must_die
--- test_code
main::emerg('chat and A2A locations require "reverse_mcp_zone" in the http '
            . 'block in %F', qr/reverse_mcp_chat a1/);



=== TEST 16: reverse_mcp_chat_zone values
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_chat_zone chat:1m idle=forever;
--- must_die
--- test_code
main::emerg('invalid idle "forever": a time of at least 1s is required',
            qr/reverse_mcp_chat_zone/);



=== TEST 17: reverse_mcp_chat_zone without a size
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_chat_zone chat;
--- must_die
--- test_code
main::emerg('invalid zone "chat", expected name:size (e.g. chat:10m)',
            qr/reverse_mcp_chat_zone/);



=== TEST 18: an unknown agent line is still refused
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    model gpt;
}
--- must_die
--- test_code
main::emerg('unknown directive "model" in reverse_mcp_agent "a1" (expected '
            . 'server, max_servers, max_tools, max_server_tools)',
            qr/^\s*model gpt;/);



=== TEST 19: every parameter, valid: nginx starts; api_key_env without "env" is a warning
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_chat_zone chat:512k idle=10m max_history=32k;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=openai model=gpt-4o-mini base_url=https://api.example.com/v1/
        api_key_env=RMCP_NOT_PASSED temperature=0.7 max_tokens=512
        max_rounds=4 timeout=30s connect_timeout=2s stream=off
        "system=You are terse.";
    description "The home assistant";
}
reverse_mcp_agent a2 {
    llm provider=anthropic model=claude anthropic_version=2023-06-01
        api_key=k;
    llm_system "Be helpful.";
}
--- config
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
location /a2a { reverse_mcp_a2a a2; }
--- test_code
my $r = http_get('/status');
is($r->{status}, 200, 'nginx runs');
like(slurp_file_("$ServRoot/logs/stderr.log") . error_log_since_start(),
     qr/"llm" api_key_env=RMCP_NOT_PASSED: no "env RMCP_NOT_PASSED;" before the http block, nginx workers will not see the variable/,
     'a warning about the missing env directive');
sub slurp_file_ { open my $fh, '<', $_[0] or return ''; local $/; <$fh> }
--- no_error_log
[alert]
[crit]
