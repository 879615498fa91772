# Tool-name mapping (src/ngx_http_reverse_mcp_names.c) as users see it: the
# exact exposed names of the aggregate endpoint for long and odd tool names
# (a readable prefix, "_" and 10 hex digits of SHA-256(server NUL tool),
# 64 characters at most), a tools/call through a shortened name reaching
# the server under its own name, the same names for the chat's model and
# its calls mapped back, two tools whose shortened names collide (neither
# is served, a warn line names both), a tool listed twice by one server,
# unknown tools and servers that are not connected (JSON-RPC errors naming
# them), and the configuration rules that keep "<server>__<tool>"
# unambiguous (nginx -t errors with file:line).
#
# The colliding pair was found offline by a birthday search over
# SHA-256("s1\0long_tool_name_that_will_not_fit_in_sixty_four_characters_N"):
# N = 460711 and 729972 share the digits 11b9e2aa95.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::MCP;
use Test::Nginx::FakeLLM;
use Test::Nginx::ChatUtil qw(chat);

master_on();
workers(2);

our $LLM = Test::Nginx::FakeLLM->start;
$ENV{TEST_NGINX_LLM_URL} = $LLM->url;

our $Long = 'long_tool_name_that_will_not_fit_in_sixty_four_characters_';
our $LongName = 's1__long_tool_name_that_will_not_fit_in_sixty_four_ch';

# the tools of s1 and what each is exposed as on /mcp
our @Tools = (
    [ 'echo',              's1__echo' ],
    [ 'a__b',              's1__a__b' ],
    [ '_lead',             's1___lead' ],
    [ 'fs.read',           's1__fs_read_f70cdf95bc' ],
    [ 'x' x 60,            's1__' . ('x' x 60) ],
    [ 'x' x 61,            's1__' . ('x' x 49) . '_2099522b9c' ],
    [ "${Long}1234567",    "${LongName}_0f67d06770" ],
    [ "${Long}460711",     undef ],                   # collides
    [ "${Long}729972",     undef ],                   # collides
);

sub s1_tools { [ map { tool($_->[0]) } @main::Tools ] }

sub s1_answers {
    return sub {
        my ($s, $m) = @_;
        return undef unless $m->{method} eq 'tools/call';
        return { content => [ { type => 'text',
                                text => "s1 ran $m->{params}{name}" } ] };
    };
}

run_tests();

$LLM->stop;

__DATA__

=== TEST 1: a server name ending in "_" is a configuration error (file:line)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1_ token=t;
}
--- must_die
--- test_code
like(error_log_since_start(),
     qr{\[emerg\] .*invalid server name "s1_": use 1-64 of \[A-Za-z0-9_-\], without "__" and not ending in "_" \("<server>__<tool>" must split at its first "__"\) in \S+/nginx\.conf:\d+$}m,
     'nginx -t names the server line');



=== TEST 2: a separator outside [A-Za-z0-9_-] is a configuration error (file:line)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /mcp {
    reverse_mcp_endpoint a1;
    reverse_mcp_tool_separator .;
}
--- must_die
--- test_code
like(error_log_since_start(),
     qr{\[emerg\] .*invalid "reverse_mcp_tool_separator" "\.": use 1-8 of \[A-Za-z0-9_-\] \(exposed tool names are function names for language models\) in \S+/nginx\.conf:\d+$}m,
     'nginx -t names the directive');



=== TEST 3: /mcp: exact names for long and odd tool names; calls through natural and shortened names; a collision serves neither and is logged
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t;
                       server s3 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
location /dash { reverse_mcp_endpoint a1; reverse_mcp_tool_separator -; }
--- test_code
my $s1 = up(name => 's1', tools => s1_tools(), on_request => s1_answers());
my $s2 = up(name => 's2', tools => [ tool('echo'), tool('echo') ]);
my $sid = session();
my $r = mcp(session => $sid, msg => req(1, 'tools/list'));
my @want = sort((map { $_->[1] } grep { defined $_->[1] } @main::Tools),
                's2__echo');
is_deeply([ sort @{ names($r) } ], \@want, 'the exposed names, exactly');
ok(!grep({ length > 64 || !/^[A-Za-z0-9_-]+$/ } @{ names($r) }),
   'every name is a function name of 64 characters at most');
ok(!grep({ index($_, '11b9e2aa95') >= 0 } @{ names($r) }),
   'the colliding pair is not listed');

# the per-server endpoint keeps the servers' own names
$r = mcp(path => '/mcp/s1', session => $sid, msg => req(2, 'tools/list'));
is_deeply([ sort @{ names($r) } ], [ sort map { $_->[0] } @main::Tools ],
          '/mcp/s1: the tools under their own names');

# calls: the server gets its own name
for my $t (grep { defined $_->[1] } @main::Tools) {
    $r = mcp(session => $sid, servers => [$s1],
             msg => req(3, 'tools/call', { name => $t->[1],
                                            arguments => {} }));
    is($r->{json}{result}{content}[0]{text}, "s1 ran $t->[0]",
       "$t->[1] calls \"$t->[0]\" of s1");
}

# the colliding name: neither tool is served
my $coll = "${main::LongName}_11b9e2aa95";
$r = mcp(session => $sid, servers => [$s1],
         msg => req(4, 'tools/call', { name => $coll, arguments => {} }));
is($r->{json}{error}{code}, -32602, 'the colliding name: -32602');
is($r->{json}{error}{message}, "Ambiguous tool name: $coll is the exposed "
   . 'name of more than one tool, so none is served (see the error log)',
   '... saying why');
ok(!grep({ $_->{params}{name} =~ /46071|72997/ } $s1->received('tools/call')),
   '... and s1 got no call');

# unknown tool, unknown shortened name, unknown server, server down
$r = mcp(session => $sid, msg => req(5, 'tools/call',
                                     { name => 's1__nope' }));
is($r->{json}{error}{code}, -32602, 'an unknown tool: -32602');
is($r->{json}{error}{message}, 'Unknown tool: s1__nope', '... naming it');
$r = mcp(session => $sid, msg => req(6, 'tools/call',
                                     { name => 's1__fs_read_0000000000' }));
is($r->{json}{error}{message}, 'Unknown tool: s1__fs_read_0000000000',
   'a shortened name nobody has: unknown');
$r = mcp(session => $sid, msg => req(7, 'tools/call',
                                     { name => 'zz__echo' }));
is($r->{json}{error}{message}, 'Unknown tool: zz__echo',
   'a server the agent does not have: unknown tool');
$r = mcp(session => $sid, msg => req(8, 'tools/call',
                                     { name => 's3__echo' }));
is($r->{json}{error}{code}, -32001, 'a server that is not connected: -32001');
is($r->{json}{error}{message}, 'Server not connected: s3 (tool s3__echo)',
   '... naming the server and the tool');

# another separator: the same hash, the natural names with "-"
my $d = session(path => '/dash');
$r = mcp(path => '/dash', session => $d, msg => req(9, 'tools/list'));
ok((grep { $_ eq 's1-fs_read_f70cdf95bc' } @{ names($r) }),
   'separator "-": s1-fs_read_f70cdf95bc');
ok((grep { $_ eq 's1-a__b' } @{ names($r) }), '... and s1-a__b');
$r = mcp(path => '/dash', session => $d, servers => [$s1],
         msg => req(10, 'tools/call', { name => 's1-fs_read_f70cdf95bc' }));
is($r->{json}{result}{content}[0]{text}, 's1 ran fs.read',
   '... which calls fs.read');

$s1->disconnect;
$s2->disconnect;
--- error_log eval
[
qr/\[warn\] .*tool "long_tool_name_that_will_not_fit_in_sixty_four_characters_460711" of server "s1" of agent "a1" is left out: its exposed name "s1__long_tool_name_that_will_not_fit_in_sixty_four_ch_11b9e2aa95" is also another tool's/,
qr/\[warn\] .*tool "long_tool_name_that_will_not_fit_in_sixty_four_characters_729972" of server "s1" of agent "a1" is left out/,
qr/\[warn\] .*server "s2" listed tool "echo" twice, the second is ignored/,
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 4: the chat's model sees the same names; a call through a shortened name reaches the server under its own name; colliding tools are not offered
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    llm provider=anthropic model=m base_url=$TEST_NGINX_LLM_URL;
}
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /chat { reverse_mcp_chat a1; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
$main::LLM->reset;
my $s1 = up(name => 's1', tools => s1_tools(), on_request => s1_answers());
my $sid = session();
my $mcp = mcp(session => $sid, msg => req(1, 'tools/list'));
my $short = "${main::LongName}_0f67d06770";
$main::LLM->script({ tool_calls => [
        { name => 's1__fs_read_f70cdf95bc', arguments => {} },
        { name => $short, arguments => {} },
        { name => "${main::LongName}_11b9e2aa95", arguments => {} } ] },
    { text => 'done' });
my $r = chat(msg => { message => 'go' }, servers => [$s1]);
is($r->{status}, 200, 'chat: 200');
my @req = $main::LLM->requests;
is_deeply([ sort map { $_->{name} } @{ $req[0]{body}{tools} } ],
          [ sort @{ names($mcp) } ],
          'the model sees the names /mcp lists');
my @got = map { $_->{params}{name} } $s1->received('tools/call');
is_deeply([ sort @got ], [ sort 'fs.read', "${main::Long}1234567" ],
          's1 got its own names; the colliding name called nothing');
my $res = $req[1]{body}{messages}[2]{content};
is($res->[0]{content}, 's1 ran fs.read', 'the first result');
is($res->[1]{content}, "s1 ran ${main::Long}1234567", 'the second result');
like($res->[2]{content}, qr/^Error: unknown tool "\Q$main::LongName\E_11b9e2aa95"/,
     'the colliding name is an unknown tool for the model');
ok($res->[2]{is_error}, '... an error result');
$s1->disconnect;
--- error_log eval
qr/\[warn\] .*tool "long_tool_name_that_will_not_fit_in_sixty_four_characters_460711" of server "s1" of agent "a1" is left out: its exposed name "s1__long_tool_name_that_will_not_fit_in_sixty_four_ch_11b9e2aa95" is also another tool's/
--- no_error_log
[alert]
[crit]
[error]
