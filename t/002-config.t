# Configuration checks: every bad value is rejected by `nginx -t` with an
# [emerg] line that says what is wrong and points at nginx.conf:<line> of
# the offending directive; and a full valid configuration starts and shows
# its agents on the status page.

use lib 't/lib';
use Test::Nginx::Socket;

master_on();
workers(2);

run_tests();


# line numbers (1-based) of the generated nginx.conf lines matching $re
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

# emerg($message, $at): the first [emerg] line of the nginx -t output is
#   <time> [emerg] <pid>#<tid>: <message> in <servroot>/conf/nginx.conf:<N>
# where N is the line of the one nginx.conf line that matches the regexp
# $at.  A "%F" in $message stands for "<file>:<N>" when the location is
# inside the message; the " in <file>:<N>" suffix is then not added.
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

=== TEST 1: reverse_mcp_zone without a size
--- http_config
reverse_mcp_zone rmcp;
--- must_die
--- test_code
emerg('invalid zone "rmcp", expected name:size (e.g. reverse_mcp:10m)',
      qr/^reverse_mcp_zone rmcp;/);



=== TEST 2: reverse_mcp_zone without a name
--- http_config
reverse_mcp_zone :1m;
--- must_die
--- test_code
emerg('invalid zone ":1m", expected name:size (e.g. reverse_mcp:10m)',
      qr/^reverse_mcp_zone :1m;/);



=== TEST 3: reverse_mcp_zone with a bad size
--- http_config
reverse_mcp_zone rmcp:1x;
--- must_die
--- test_code
emerg('invalid zone size "1x"', qr/^reverse_mcp_zone rmcp:1x;/);



=== TEST 4: reverse_mcp_zone with an empty size
--- http_config
reverse_mcp_zone rmcp:;
--- must_die
--- test_code
emerg('invalid zone size ""', qr/^reverse_mcp_zone rmcp:;/);



=== TEST 5: reverse_mcp_zone too small
--- http_config
reverse_mcp_zone rmcp:10k;
--- must_die
--- test_code
emerg('zone "rmcp" is too small: 10k, at least 256k',
      qr/^reverse_mcp_zone rmcp:10k;/);



=== TEST 6: reverse_mcp_zone one page short of the minimum
--- http_config
reverse_mcp_zone rmcp:252k;
--- must_die
--- test_code
emerg('zone "rmcp" is too small: 252k, at least 256k',
      qr/^reverse_mcp_zone rmcp:252k;/);



=== TEST 7: duplicate reverse_mcp_zone
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_zone other:1m;
--- must_die
--- test_code
emerg('"reverse_mcp_zone" directive is duplicate',
      qr/^reverse_mcp_zone other:1m;/);



=== TEST 8: reverse_mcp_agent with an invalid name ("__")
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a__b {
    server s1 token=t1;
}
--- must_die
--- test_code
emerg('invalid agent name "a__b": use 1-64 of [A-Za-z0-9_-], without "__" and not ending in "_"',
      qr/^reverse_mcp_agent a__b \{/);



=== TEST 9: reverse_mcp_agent with an invalid name (".")
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a.b {
    server s1 token=t1;
}
--- must_die
--- test_code
emerg('invalid agent name "a.b": use 1-64 of [A-Za-z0-9_-], without "__" and not ending in "_"',
      qr/^reverse_mcp_agent a\.b \{/);



=== TEST 10: reverse_mcp_agent with a name of 65 characters
--- http_config eval
"reverse_mcp_zone rmcp:1m;
reverse_mcp_agent " . ('a' x 65) . " {
    server s1 token=t1;
}"
--- must_die
--- test_code
emerg('invalid agent name "' . ('a' x 65) . '": use 1-64 of [A-Za-z0-9_-], '
      . 'without "__" and not ending in "_"', qr/^reverse_mcp_agent a{65} \{/);



=== TEST 11: duplicate reverse_mcp_agent 
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
}
reverse_mcp_agent a1 { # second
    server s2 token=t2;
}
--- must_die
--- test_code
emerg('duplicate agent "a1"', qr/^reverse_mcp_agent a1 \{ # second/);



=== TEST 12: unknown line inside reverse_mcp_agent
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    foo bar;
}
--- must_die
--- test_code
emerg('unknown directive "foo" in reverse_mcp_agent "a1" (expected server, '
      . 'max_servers, max_tools, max_server_tools)', qr/^\s+foo bar;/);



=== TEST 13: server without a token
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1;
}
--- must_die
--- test_code
emerg('"server" needs a name and one of token=, token_file=, token_sha256= '
      . 'or no_auth', qr/^\s+server s1;/);



=== TEST 14: server with only "disabled"
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 disabled;
}
--- must_die
--- test_code
emerg('server "s1" needs exactly one of token=, token_file=, token_sha256= '
      . 'or no_auth', qr/^\s+server s1 disabled;/);



=== TEST 15: server with two token kinds (token= and token_sha256=)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1 token_sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef;
}
--- must_die
--- test_code
emerg('server "s1" needs exactly one of token=, token_file=, token_sha256= '
      . 'or no_auth', qr/^\s+server s1 token=t1 token_sha256=/);



=== TEST 16: server with token= and no_auth
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 no_auth token=t1;
}
--- must_die
--- test_code
emerg('server "s1" needs exactly one of token=, token_file=, token_sha256= '
      . 'or no_auth', qr/^\s+server s1 no_auth token=t1;/);



=== TEST 17: server with two token= values
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1 token=t2;
}
--- must_die
--- test_code
emerg('server "s1" needs exactly one of token=, token_file=, token_sha256= '
      . 'or no_auth', qr/^\s+server s1 token=t1 token=t2;/);



=== TEST 18: server with an empty token=
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=;
}
--- must_die
--- test_code
emerg('empty token for server "s1"', qr/^\s+server s1 token=;/);



=== TEST 19: token_sha256 of 63 hex digits
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token_sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde;
}
--- must_die
--- test_code
emerg('invalid token_sha256 for server "s1": 64 hex digits are required',
      qr/^\s+server s1 token_sha256=/);



=== TEST 20: token_sha256 of 64 characters with a non-hex one
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token_sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg;
}
--- must_die
--- test_code
emerg('invalid token_sha256 for server "s1": 64 hex digits are required',
      qr/^\s+server s1 token_sha256=/);



=== TEST 21: token_file that does not exist
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token_file=$TEST_NGINX_SERVROOT/conf/nope.token;
}
--- must_die
--- test_code
emerg("cannot open token file \"$servroot/conf/nope.token\" (2: No such "
      . 'file or directory)', qr/^\s+server s1 token_file=/);



=== TEST 22: token_file that is empty (white space only)
--- user_files
>>> ../conf/empty.token
  

--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token_file=empty.token;
}
--- must_die
--- test_code
emerg("token file \"$servroot/conf/empty.token\" is empty",
      qr/^\s+server s1 token_file=empty\.token;/);



=== TEST 23: invalid server name "a b"
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server "a b" token=t1;
}
--- must_die
--- test_code
emerg('invalid server name "a b": use 1-64 of [A-Za-z0-9_-], without "__" and not ending in "_" ("<server>__<tool>" must split at its first "__")',
      qr/^\s+server "a b" token=t1;/);



=== TEST 24: invalid server name "x__y"
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server x__y token=t1;
}
--- must_die
--- test_code
emerg('invalid server name "x__y": use 1-64 of [A-Za-z0-9_-], without "__" and not ending in "_" ("<server>__<tool>" must split at its first "__")',
      qr/^\s+server x__y token=t1;/);



=== TEST 25: duplicate server
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    server s1 token=t2;
}
--- must_die
--- test_code
emerg('duplicate server "s1" in agent "a1"', qr/^\s+server s1 token=t2;/);



=== TEST 26: unknown server parameter
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1 enabled;
}
--- must_die
--- test_code
emerg('invalid parameter "enabled" for server "s1"',
      qr/^\s+server s1 token=t1 enabled;/);



=== TEST 27: max_servers 0
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    max_servers 0;
}
--- must_die
--- test_code
emerg('invalid "max_servers" value "0": a positive number is required',
      qr/^\s+max_servers 0;/);



=== TEST 28: max_servers abc
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    max_servers abc;
}
--- must_die
--- test_code
emerg('invalid "max_servers" value "abc": a positive number is required',
      qr/^\s+max_servers abc;/);



=== TEST 29: max_tools -1
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    max_tools -1;
}
--- must_die
--- test_code
emerg('invalid "max_tools" value "-1": a positive number is required',
      qr/^\s+max_tools -1;/);



=== TEST 30: max_servers with two values
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    max_servers 1 2;
}
--- must_die
--- test_code
emerg('"max_servers" takes one number', qr/^\s+max_servers 1 2;/);



=== TEST 31: reverse_mcp_connector naming an undefined agent
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
}
--- config
location /ws {
    reverse_mcp_connector nosuch;
}
--- must_die
--- test_code
emerg('"reverse_mcp_connector" names unknown agent "nosuch" in %F (define '
      . 'it with "reverse_mcp_agent nosuch { ... }")',
      qr/^\s+reverse_mcp_connector nosuch;/);



=== TEST 32: reverse_mcp_connector with an invalid agent name
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
}
--- config
location /ws {
    reverse_mcp_connector "a b";
}
--- must_die
--- test_code
emerg('invalid agent name "a b"', qr/^\s+reverse_mcp_connector "a b";/);



=== TEST 33: reverse_mcp_connector without reverse_mcp_zone
--- http_config
reverse_mcp_agent a1 {
    server s1 token=t1;
}
--- config
location /ws {
    reverse_mcp_connector a1;
}
--- must_die
--- test_code
emerg('"reverse_mcp_connector" requires "reverse_mcp_zone" in the http '
      . 'block in %F', qr/^\s+reverse_mcp_connector a1;/);



=== TEST 34: reverse_mcp_status without reverse_mcp_zone
--- config
location = /status {
    reverse_mcp_status;
}
--- must_die
--- test_code
emerg('"reverse_mcp_status" requires "reverse_mcp_zone" in the http '
      . 'block in %F', qr/^\s+reverse_mcp_status;/);



=== TEST 35: duplicate reverse_mcp_connector in one location
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
}
reverse_mcp_agent a2 {
    server s1 token=t1;
}
--- config
location /ws {
    reverse_mcp_connector a1;
    reverse_mcp_connector a2;
}
--- must_die
--- test_code
emerg('"reverse_mcp_connector" directive is duplicate',
      qr/^\s+reverse_mcp_connector a2;/);



=== TEST 36: reverse_mcp_query_token maybe
--- http_config
reverse_mcp_zone rmcp:1m;
--- config
location /ws {
    reverse_mcp_query_token maybe;
}
--- must_die
--- test_code
emerg('invalid value "maybe" in "reverse_mcp_query_token" directive, it '
      . 'must be "on" or "off"', qr/^\s+reverse_mcp_query_token maybe;/);



=== TEST 37: reverse_mcp_duplicate bogus
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_duplicate bogus;
--- must_die
--- test_code
emerg('invalid value "bogus"', qr/^reverse_mcp_duplicate bogus;/);



=== TEST 38: reverse_mcp_shutdown bogus
--- http_config
reverse_mcp_zone rmcp:1m;
--- config
reverse_mcp_shutdown bogus;
--- must_die
--- test_code
emerg('invalid value "bogus"', qr/^reverse_mcp_shutdown bogus;/);



=== TEST 39: reverse_mcp_ping_interval 5ms
--- http_config
reverse_mcp_zone rmcp:1m;
--- config
location /ws {
    reverse_mcp_ping_interval 5ms;
}
--- must_die
--- test_code
emerg('"reverse_mcp_ping_interval" directive must be at least 10ms',
      qr/^\s+reverse_mcp_ping_interval 5ms;/);



=== TEST 40: reverse_mcp_handshake_timeout 0
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_handshake_timeout 0;
--- must_die
--- test_code
emerg('"reverse_mcp_handshake_timeout" directive must be at least 10ms',
      qr/^reverse_mcp_handshake_timeout 0;/);



=== TEST 41: reverse_mcp_ping_timeout abc
--- http_config
reverse_mcp_zone rmcp:1m;
--- config
reverse_mcp_ping_timeout abc;
--- must_die
--- test_code
emerg('"reverse_mcp_ping_timeout" directive invalid value',
      qr/^reverse_mcp_ping_timeout abc;/);



=== TEST 42: reverse_mcp_max_message 100 (location)
--- http_config
reverse_mcp_zone rmcp:1m;
--- config
location /ws {
    reverse_mcp_max_message 100;
}
--- must_die
--- test_code
emerg('"reverse_mcp_max_message" directive must be at least 1k',
      qr/^\s+reverse_mcp_max_message 100;/);



=== TEST 43: reverse_mcp_max_message 1023 (http)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_max_message 1023;
--- must_die
--- test_code
emerg('"reverse_mcp_max_message" directive must be at least 1k',
      qr/^reverse_mcp_max_message 1023;/);



=== TEST 44: reverse_mcp_send_queue smaller than reverse_mcp_max_message
--- http_config
reverse_mcp_zone rmcp:1m;
--- config
location /ws {
    reverse_mcp_max_message 64k;
    reverse_mcp_send_queue 32k;
}
--- must_die
--- test_code
emerg('"reverse_mcp_send_queue" (32768) must not be smaller than '
      . '"reverse_mcp_max_message" (65536)',
      qr/^\s+reverse_mcp_send_queue 32k;/);



=== TEST 45: reverse_mcp_zone outside the http block
--- main_config
reverse_mcp_zone rmcp:1m;
--- must_die
--- test_code
emerg('"reverse_mcp_zone" directive is not allowed here',
      qr/^reverse_mcp_zone rmcp:1m;/);



=== TEST 46: a full valid configuration: nginx starts, /status lists the agents in config order
--- user_files
>>> ../conf/z.token
zeta-file-token

--- http_config
reverse_mcp_zone rmcp:256k;

reverse_mcp_agent zeta {
    server s1 token=t1;
    server s2 token_file=z.token;
    server s3 token_sha256=0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef;
    server s4 no_auth;
    server s5 token=t5 disabled;
    server s-6_x token=t6;
    max_servers 3;
    max_tools 10;
}

reverse_mcp_agent alpha {
    server s1 token=other;
}

reverse_mcp_agent m-1_x {
    max_tools 1;
    server only no_auth disabled;
    max_servers 100000;
}

reverse_mcp_query_token off;
reverse_mcp_duplicate reject;
reverse_mcp_shutdown close;
reverse_mcp_handshake_timeout 2s;
reverse_mcp_call_timeout 5s;
reverse_mcp_ping_interval 10ms;
reverse_mcp_ping_timeout 1s;
reverse_mcp_max_message 1k;
reverse_mcp_send_queue 1k;

map $http_x_agent $rmcp_agent {
    default  zeta;
    alpha    alpha;
}
--- config
reverse_mcp_max_message 64k;
reverse_mcp_send_queue 128k;
reverse_mcp_ping_interval 30s;

location /ws {
    reverse_mcp_connector $rmcp_agent;
    reverse_mcp_query_token on;
    reverse_mcp_duplicate replace;
    reverse_mcp_shutdown keep;
}
location /ws-zeta {
    reverse_mcp_connector zeta;
    reverse_mcp_max_message 16m;
    reverse_mcp_send_queue 16m;
}
location /ws-alpha {
    reverse_mcp_connector alpha;
}
location = /status {
    reverse_mcp_status;
}
--- test_code
# each worker enters itself at its start (slow under valgrind)
my $j;
wait_until(sub { $j = status_json(); @{ $j->{workers} } == 2 }, 5, 0.05);
is_deeply([ map { $_->{name} } @{ $j->{agents} } ], [qw(zeta alpha m-1_x)],
          'agents in config order');
is_deeply([ map { [ @$_{qw(name max_servers max_tools servers_count
                           tools_count servers)} ] } @{ $j->{agents} } ],
          [ [ 'zeta', 3, 10, 0, 0, [] ],
            [ 'alpha', 64, 4096, 0, 0, [] ],
            [ 'm-1_x', 100000, 1, 0, 0, [] ] ],
          'max_servers / max_tools as configured (defaults 64 / 4096)');
is($j->{zone}{name}, 'rmcp', 'zone name');
is($j->{zone}{size}, 262144, 'zone size 256k');
is(scalar @{ $j->{workers} }, 2, 'two workers');

my $one = status_json('/status?agent=alpha');
is_deeply([ map { $_->{name} } @{ $one->{agents} } ], ['alpha'],
          '?agent=alpha narrows the page');
is(http_get('/status?agent=nosuch')->{status}, 404, '?agent=nosuch: 404');

# nginx -t agrees
my $out = `$NginxBinary -p $servroot/ -c conf/nginx.conf -t 2>&1`;
is($?, 0, 'nginx -t exits 0');
like($out, qr/syntax is ok/, 'nginx -t: syntax is ok');
like($out, qr/test is successful/, 'nginx -t: test is successful');
unlike($out, qr/\[(?:warn|emerg|alert)\]/, 'nginx -t: no warning');
--- no_error_log
[warn]
[emerg]
[alert]
[crit]



=== TEST 47: an agent without servers is accepted with a warning
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent lonely {
    max_servers 2;
}
--- config
location = /status {
    reverse_mcp_status;
}
--- test_code
is_deeply([ map { $_->{name} } @{ status_json()->{agents} } ], ['lonely'],
          'the empty agent is listed');
my $out = `$NginxBinary -p $servroot/ -c conf/nginx.conf -t 2>&1`;
is($?, 0, 'nginx -t exits 0');
like($out, qr/\[warn\] (?:\d+#\d+: )?agent "lonely" has no "server" entries: no reverse server can connect to it in \Q$servroot\E\/conf\/nginx\.conf:\d+$/m,
     'nginx -t warns about the agent without servers');
