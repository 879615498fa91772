# The agent-facing MCP endpoint speaking the stateless 2026-07-28 revision
# on the same location as the legacy, session-based ones (dual era): a
# request whose params._meta carries io.modelcontextprotocol/protocolVersion
# is served without a session; MCP-Protocol-Version, Mcp-Method and
# Mcp-Name must match the body (-32020), an unsupported version is -32022
# with the supported ones, an unknown (or removed: ping, logging/setLevel)
# method is HTTP 404 + -32601, server/discover, resultType / ttlMs /
# cacheScope on results, tools/call forwarded to legacy reverse servers
# (progress as SSE, closing the stream cancels), subscriptions/listen.
#
# The HTTP helpers (mcp(), modern() ...) are in t/lib/Test/Nginx/MCP.pm.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::MCP;
use MIME::Base64 ();

master_on();
workers(2);

our $V = "2026-07-28";

run_tests();

__DATA__

=== TEST 1: server/discover; headers against the body; versions; removed and unknown methods
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $r = mcp(modern(1, 'server/discover'));
is($r->{status}, 200, "server/discover: 200");
like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON');
ok(!exists $r->{headers}{'mcp-session-id'}, 'no Mcp-Session-Id minted');
my $res = $r->{json}{result};
is($r->{json}{id}, 1, 'the id echoed');
is_deeply($res->{supportedVersions},
          ['2026-07-28', '2025-11-25', '2025-06-18', '2025-03-26'],
          'supportedVersions: the modern one first, then the legacy ones');
is($main::J->encode($res->{capabilities}{tools}), '{"listChanged":true}',
   'capabilities: tools with listChanged');
is($res->{resultType}, 'complete', 'resultType complete');
is($res->{ttlMs}, 0, 'ttlMs 0');
is($res->{cacheScope}, 'private', 'cacheScope private');
is($res->{_meta}{'io.modelcontextprotocol/serverInfo'}{name},
   'ngx_http_reverse_mcp_module', 'serverInfo in _meta');
like($res->{instructions}, qr/agent "a1"/, 'instructions');

# Mcp-Session-Id is ignored: neither checked nor echoed
$r = mcp(modern(2, 'server/discover'), session => 'f' x 32);
is($r->{status}, 200, 'an unknown Mcp-Session-Id is ignored');
ok(!exists $r->{headers}{'mcp-session-id'}, '... and not echoed');

my $mismatch = sub {
    my ($r, $what) = @_;
    is($r->{status}, 400, "$what: 400");
    is($r->{json}{error}{code}, -32020, "$what: -32020 HeaderMismatch");
};
$mismatch->(mcp(modern(3, 'server/discover', undef, version => undef)),
            'no MCP-Protocol-Version');
$mismatch->(mcp(modern(3, 'server/discover', undef,
                       version => '2025-11-25')),
            'MCP-Protocol-Version other than _meta');
$r = mcp(modern(3, 'server/discover', undef, method_header => undef));
$mismatch->($r, 'no Mcp-Method');
is($r->{json}{id}, 3, '... the id echoed');
$mismatch->(mcp(modern(3, 'server/discover', undef,
                       method_header => 'tools/list')),
            'Mcp-Method other than the body');
$mismatch->(mcp(modern(3, 'server/discover', undef, no_meta => 1)),
            'MCP-Protocol-Version 2026-07-28 without _meta');

for my $v ('1900-01-01', '2025-11-25') {
    $r = mcp(modern(4, 'server/discover', undef, body_version => $v,
                    version => $v));
    is($r->{status}, 400, "_meta version $v: 400");
    is($r->{json}{error}{code}, -32022, '... -32022');
    is_deeply($r->{json}{error}{data},
              { supported => ['2026-07-28', '2025-11-25', '2025-06-18',
                              '2025-03-26'],
                requested => $v }, '... data: supported and requested');
}

for my $m ('ping', 'logging/setLevel', 'resources/subscribe', 'nope/nope') {
    $r = mcp(modern(5, $m, $m eq 'logging/setLevel'
                           ? { level => 'info' }
                           : $m eq 'resources/subscribe' ? { uri => 'x:y' }
                           : undef));
    is($r->{status}, 404, "$m: 404");
    is($r->{json}{error}{code}, -32601, "$m: -32601");
}

# a notification: 202, no body
$r = mcp(modern(undef, 'notifications/roots/list_changed', undef,
                method_header => undef));
is($r->{status}, 202, 'a notification: 202');

# the legacy era on the same location, unchanged
$r = mcp(msg => { jsonrpc => '2.0', id => 9, method => 'initialize',
                  params => { protocolVersion => '2025-11-25',
                              capabilities => {},
                              clientInfo => { name => 't', version => '1' } } });
is($r->{status}, 200, 'initialize still works');
like($r->{headers}{'mcp-session-id'} // '', qr/^[0-9a-f]{32}$/,
     '... with a session');
ok(!exists $r->{json}{result}{resultType}, '... and legacy results');
--- no_error_log
[alert]
[crit]



=== TEST 2: tools/list, tools/call (Mcp-Name, base64 sentinel), progress as SSE, closing the stream cancels
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $on_request = sub {
    my ($s, $msg) = @_;
    return undef unless $msg->{method} eq 'tools/call';
    my $name = $msg->{params}{name};
    return { noreply => 1 } if $name eq 'hang';
    if ($name eq 'slow') {
        my $tok = $msg->{params}{_meta}{progressToken};
        $s->notify('notifications/progress', { progressToken => $tok,
            progress => $_, total => 2 }) for 1 .. 2;
        $s->notify('notifications/message', { level => 'info',
                                              data => 'fyi' });
        $s->notify('notifications/message', { level => 'error',
                                              data => 'oops' });
        return { content => [ { type => 'text', text => 'done' } ] };
    }
    return undef;
};
my $s2 = up(name => 's2', tools => [ tool('zeta'), tool('alpha') ]);
my $s1 = up(name => 's1', on_request => $on_request,
            tools => [ map { tool($_) } ("h\x{e9}llo", qw(echo slow hang)) ]);

my $r = mcp(modern(1, 'tools/list'));
is($r->{status}, 200, 'tools/list: 200');
my $res = $r->{json}{result};
is_deeply([ map { $_->{name} } @{ $res->{tools} } ],
          [ "s1__echo", "s1__hang", "s1__slow",
            "s2__alpha", "s2__zeta" ],
          'deterministic order: server, then tool name');
is($res->{resultType}, 'complete', 'resultType');
is($res->{ttlMs}, 0, 'ttlMs');
is($res->{cacheScope}, 'private', 'cacheScope');
is_deeply(mcp(modern(1, 'tools/list'))->{json}{result}{tools},
          $res->{tools}, 'the same list again');

$r = mcp(modern(2, 'tools/call', { name => 's1__echo',
                                   arguments => { text => 'hi' } }),
         servers => [ $s1 ]);
is($r->{status}, 200, 'tools/call: 200');
is_deeply($r->{json}{result}{content}, [ { type => 'text', text => 'hi' } ],
          'the result');
is($r->{json}{result}{resultType}, 'complete', '... with resultType');
ok(!exists $r->{json}{result}{ttlMs}, '... no ttlMs on a call result');
my ($last) = reverse $s1->received('tools/call');
is_deeply([ sort keys %{ $last->{params} } ], [qw(arguments name)],
          'the reverse server gets name and arguments, no 2026 _meta');
ok(!exists $r->{headers}{'mcp-session-id'}, 'no session');

$r = mcp(modern(3, 'tools/call', { name => 's1__echo' }, name_header => undef));
is($r->{status}, 400, 'no Mcp-Name: 400');
is($r->{json}{error}{code}, -32020, '... -32020');
$r = mcp(modern(3, 'tools/call', { name => 's1__echo' },
                name_header => 's1__slow'));
is($r->{status}, 400, 'another Mcp-Name: 400');
is($r->{json}{error}{code}, -32020, '... -32020');
is(scalar $s1->received('tools/call'), 1, '... nothing was called');

my $b64 = '=?base64?' . MIME::Base64::encode_base64(
    Cpanel::JSON::XS->new->utf8->encode(["s1__h\x{e9}llo"]) =~ s/^\["|"\]$//gr,
    '') . '?=';
$r = mcp(modern(4, 'tools/call', { name => "s1__h\x{e9}llo" },
                name_header => $b64), servers => [ $s1 ]);
is($r->{status}, 200, 'a base64 Mcp-Name of a non-ASCII name matches: 200');
is($r->{json}{error}{code}, -32602,
   '... and the call is answered (that tool is not listed: -32602)');
$r = mcp(modern(4, 'tools/call', { name => 's1__echo' },
                name_header => '=?base64?' .
                MIME::Base64::encode_base64('s1__slow', '') . '?='));
is($r->{json}{error}{code}, -32020, 'a base64 Mcp-Name that differs: -32020');
$r = mcp(modern(4, 'tools/call', { name => 's1__echo' },
                name_header => '=?base64?' .
                MIME::Base64::encode_base64('s1__echo', '') . '?='),
         servers => [ $s1 ]);
is($r->{status}, 200, 'a base64 Mcp-Name of a plain name: 200');

# resources/read and prompts/get: Mcp-Name too
$r = mcp(modern(5, 'resources/read', { uri => 'file:///a' },
                name_header => 'file:///b'));
is($r->{json}{error}{code}, -32020, 'resources/read: Mcp-Name vs uri');
$r = mcp(modern(5, 'prompts/get', { name => 'p' }, name_header => undef));
is($r->{json}{error}{code}, -32020, 'prompts/get: Mcp-Name required');
$r = mcp(modern(5, 'prompts/list'));
is($r->{status}, 404, 'prompts/list, no server declares prompts: 404');
is($r->{json}{error}{code}, -32601, '... -32601');

# progress and (opted-in) log messages stream before the result
$r = mcp(modern(6, 'tools/call', { name => 's1__slow' },
                meta => { progressToken => 'p1',
                          'io.modelcontextprotocol/logLevel' => 'error' }),
         servers => [ $s1 ]);
like($r->{headers}{'content-type'}, qr{^text/event-stream}, 'SSE');
is($r->{headers}{'x-accel-buffering'}, 'no', 'X-Accel-Buffering: no');
my @ev = @{ $r->{events} };
is_deeply([ map { $_->{params}{progress} // () }
            grep { ($_->{method} // '') eq 'notifications/progress' } @ev ],
          [1, 2], 'progress with the caller\'s token...');
is_deeply([ map { $_->{params}{progressToken} // () }
            grep { ($_->{method} // '') eq 'notifications/progress' } @ev ],
          ['p1', 'p1'], '... restored');
is_deeply([ map { $_->{params}{data} // () }
            grep { ($_->{method} // '') eq 'notifications/message' } @ev ],
          ['oops'], 'log messages at or above the request\'s logLevel');
is($ev[-1]{result}{resultType}, 'complete', 'the result last, complete');
($last) = reverse $s1->received('tools/call');
ok(!grep(/^io\.modelcontextprotocol/, keys %{ $last->{params}{_meta} }),
   'the reverse server sees no io.modelcontextprotocol/ keys');

# no logLevel: no log messages; without a token JSON
$r = mcp(modern(7, 'tools/call', { name => 's1__slow' },
                meta => { progressToken => 7 }), servers => [ $s1 ]);
like($r->{headers}{'content-type'}, qr{^text/event-stream},
     'a token, no logLevel: SSE');
is(scalar(grep { ($_->{method} // '') eq 'notifications/message' }
           @{ $r->{events} }), 0, '... without log messages');
is(scalar(grep { ($_->{method} // '') eq 'notifications/progress' }
           @{ $r->{events} }), 2, '... with the progress');
$r = mcp(modern(7, 'tools/call', { name => 's1__slow' }), servers => [ $s1 ]);
like($r->{headers}{'content-type'}, qr{^application/json},
     'no token, no logLevel: JSON');
is($r->{json}{result}{content}[0]{text}, 'done', '... the result');

# closing the response stream cancels the call
my $cancels = sub { scalar grep { ($_->{method} // '') eq
                                  'notifications/cancelled' }
                           @{ $s1->{received} } };
my $n = $s1->received('tools/call');
my $h = mcp_start(modern(8, 'tools/call', { name => 's1__hang' },
                         meta => { progressToken => 'x' }),
                  servers => [ $s1 ]);
ok(mcp_poll($h, 5, sub { $_[0] =~ /\r\n\r\n/ }), 'the stream opens');
like($h->{buf}, qr{^HTTP/1.1 200}, '... 200');
ok($s1->pump_until(sub { $s1->received('tools/call') == $n + 1 }, 5),
   'the server got the call');
close $h->{sock};
ok($s1->pump_until(sub { $cancels->() == 1 }, 5),
   'stream closed: the server gets notifications/cancelled');
my ($c) = grep { ($_->{method} // '') eq 'notifications/cancelled' }
          @{ $s1->{received} };
my ($call) = reverse $s1->received('tools/call');
is($c->{params}{requestId}, $call->{id}, '... for its call');
$s1->disconnect;
$s2->disconnect;
--- error_log
cancelled: the client went away
--- no_error_log
[alert]
[crit]



=== TEST 3: subscriptions/listen: acknowledged first, then tools list_changed for those who opted in
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $changes = sub { scalar grep { ($_->{method} // '') eq
                                  'notifications/tools/list_changed' }
                           events_of($_[0]) };
my @subs = map {
    mcp_start(modern("sub-$_", 'subscriptions/listen',
                     { notifications => { toolsListChanged => \1,
                                          promptsListChanged => \1 } }))
} 1 .. 2;
my $quiet = mcp_start(modern(7, 'subscriptions/listen',
                             { notifications => {} }));
for my $h (@subs, $quiet) {
    ok(mcp_poll($h, 5, sub { $_[0] =~ /subscriptions\/acknowledged.*\n\n/s }),
       'acknowledged');
    like($h->{buf}, qr{^HTTP/1.1 200}, 'status 200');
    like($h->{buf}, qr{\r\nContent-Type: text/event-stream\r\n}i,
         'text/event-stream');
    like($h->{buf}, qr{\r\nX-Accel-Buffering: no\r\n}i,
         'X-Accel-Buffering: no');
    unlike($h->{buf}, qr{\r\nMcp-Session-Id:}i, 'no session');
    my @ev = events_of($h->{buf});
    is($ev[0]{method}, 'notifications/subscriptions/acknowledged',
       'the first message is the acknowledgement');
}
my ($ack) = events_of($subs[0]{buf});
is($main::J->encode($ack->{params}),
   '{"_meta":{"io.modelcontextprotocol/subscriptionId":"sub-1"},'
   . '"notifications":{"promptsListChanged":true,"toolsListChanged":true}}',
   'its subscription id; the lists asked for are honoured (t/016)');
($ack) = events_of($quiet->{buf});
is_deeply($ack->{params}{notifications}, {}, 'nothing asked, nothing honoured');
is($ack->{params}{_meta}{'io.modelcontextprotocol/subscriptionId'}, 7,
   'a numeric id');

# servers come (either worker) and go: every subscription that opted in
my @s;
for my $name (qw(s1 s2)) {
    push @s, up(name => $name);
    for my $h (@subs) {
        ok(mcp_poll($h, 5, sub { $changes->($_[0]) >= @s }),
           "list_changed after $name registered");
    }
}
$_->disconnect for @s;
for my $h (@subs) {
    ok(mcp_poll($h, 5, sub { $changes->($_[0]) >= 3 }),
       'list_changed after the servers left');
}
my ($chg) = grep { ($_->{method} // '') eq 'notifications/tools/list_changed' }
            events_of($subs[1]{buf});
is_deeply($chg->{params},
          { _meta => { 'io.modelcontextprotocol/subscriptionId' => 'sub-2' } },
          'the notification carries the subscription id');
mcp_poll($quiet, 0.5, sub { 0 });
is($changes->($quiet->{buf}), 0, 'no list_changed where not asked for');
ok(!$quiet->{eof} && !grep({ $_->{eof} } @subs), 'the streams stay open');
close $_->{sock} for @subs, $quiet;

my $r = mcp(modern(8, 'subscriptions/listen'));
is($r->{status}, 200, 'no notifications filter: a JSON-RPC error');
is($r->{json}{error}{code}, -32602, '... -32602');
--- no_error_log
[alert]
[crit]



=== TEST 4: resources and prompts of a reverse server: resultType, ttlMs and cacheScope on lists and reads
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = up(name => 's1',
            capabilities => { tools => {}, resources => {}, prompts => {} },
            on_request => sub {
    my ($s, $msg) = @_;
    my $m = $msg->{method};
    return { resources => [ { uri => 'file:///a', name => 'a' } ] }
        if $m eq 'resources/list';
    return { contents => [ { uri => $msg->{params}{uri}, text => 'A' } ] }
        if $m eq 'resources/read';
    return { prompts => [ { name => 'p' } ] } if $m eq 'prompts/list';
    return { messages => [] } if $m eq 'prompts/get';
    return undef;
});
for my $path ('/mcp', '/mcp/s1') {
    my $r = mcp(modern(1, 'resources/list'), path => $path,
                servers => [ $s1 ]);
    is($r->{status}, 200, "$path resources/list: 200");
    my $res = $r->{json}{result};
    is($res->{resources}[0]{uri}, 'file:///a', '... the resources');
    is($res->{resultType}, 'complete', '... resultType');
    is($res->{ttlMs}, 0, '... ttlMs');
    is($res->{cacheScope}, 'private', '... cacheScope');

    $r = mcp(modern(2, 'resources/read', { uri => 'file:///a' }),
             path => $path, servers => [ $s1 ]);
    is($r->{json}{result}{contents}[0]{text}, 'A', "$path resources/read");
    is($r->{json}{result}{ttlMs}, 0, '... ttlMs (a cacheable result)');
    is($r->{json}{result}{cacheScope}, 'private', '... cacheScope');

    $r = mcp(modern(3, 'prompts/list'), path => $path, servers => [ $s1 ]);
    is($r->{json}{result}{resultType}, 'complete', "$path prompts/list");
    is($r->{json}{result}{ttlMs}, 0, '... ttlMs');

    my $p = $path eq '/mcp' ? 's1__p' : 'p';
    $r = mcp(modern(4, 'prompts/get', { name => $p }), path => $path,
             servers => [ $s1 ]);
    is($r->{json}{result}{resultType}, 'complete', "$path prompts/get");
    ok(!exists $r->{json}{result}{ttlMs}, '... not cacheable');

    $r = mcp(modern(5, 'server/discover'), path => $path);
    ok($r->{json}{result}{capabilities}{resources}, "$path discover: resources");
    ok($r->{json}{result}{capabilities}{prompts}, '... and prompts');
}
$s1->disconnect;
--- no_error_log
[alert]
[crit]
