# MCP 2026-07-28 on the endpoint, beyond t/013: tool parameters mirrored
# into Mcp-Param-<name> headers ("x-mcp-header" in a tool's inputSchema)
# are checked against the arguments (400 + -32020 when a header is
# missing, extra, malformed or different; Base64 sentinel values decoded;
# integers compared as numbers; headers the tool does not declare are
# ignored), tool definitions whose x-mcp-header breaks the spec's rules
# are rejected at registration with a warn line, subscriptions/listen
# carries prompts and resources list_changed (a server that comes or
# goes, or says its list changed), and a call whose server asks for a
# client capability the 2026-07-28 caller did not declare ends with 400 +
# -32021 MissingRequiredClientCapability.
#
# The HTTP helpers (mcp(), modern() ...) are in t/lib/Test/Nginx/MCP.pm.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::MCP;
use MIME::Base64 ();

master_on();
workers(2);

sub sql_tool {
    return { name => 'execute_sql', description => 'SQL',
             inputSchema => { type => 'object', properties => {
                 region => { type => 'string', 'x-mcp-header' => 'Region' },
                 n      => { type => 'integer', 'x-mcp-header' => 'N' },
                 flag   => { type => 'boolean', 'x-mcp-header' => 'Flag' },
                 where  => { type => 'object', properties => {
                     zone => { type => 'string',
                               'x-mcp-header' => 'Zone' } } },
                 query  => { type => 'string' } } } };
}

sub bad_tool {
    my ($name, $props) = @_;
    return { name => $name, inputSchema => { type => 'object',
                                             properties => $props } };
}

sub b64 { '=?base64?' . MIME::Base64::encode_base64($_[0], '') . '?=' }

run_tests();

__DATA__

=== TEST 1: Mcp-Param-* headers against the arguments; invalid x-mcp-header tools rejected at registration
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s1 = up(name => 's1', tools => [
    main::sql_tool(), tool('echo'),
    main::bad_tool('in_items', { l => { type => 'array', items => {
        type => 'string', 'x-mcp-header' => 'L' } } }),
    main::bad_tool('on_number', { x => { type => 'number',
                                         'x-mcp-header' => 'X' } }),
    main::bad_tool('twice', { a => { type => 'string', 'x-mcp-header' => 'A' },
                              b => { type => 'string',
                                     'x-mcp-header' => 'a' } }),
    main::bad_tool('not_token', { a => { type => 'string',
                                         'x-mcp-header' => 'a b' } }),
    main::bad_tool('empty', { a => { type => 'string',
                                     'x-mcp-header' => '' } }) ],
    on_request => sub {
        my ($s, $m) = @_;
        return undef unless $m->{method} eq 'tools/call';
        return { content => [ { type => 'text', text => 'ok' } ] };
    });
my $r = mcp(modern(1, 'tools/list'));
is_deeply(names($r), [qw(s1__echo s1__execute_sql)],
          'tools with an invalid x-mcp-header are not listed');

my $call = sub {
    my ($id, $args, @headers) = @_;
    return mcp(modern($id, 'tools/call',
                      { name => 's1__execute_sql', arguments => $args },
                      headers => \@headers), servers => [$s1]);
};
my %args = (region => 'us-west1', n => 42, flag => \1,
            where => { zone => 'b' }, query => 'SELECT 1');
my @ok = ('Mcp-Param-Region' => 'us-west1', 'Mcp-Param-N' => '42',
          'Mcp-Param-Flag' => 'true', 'Mcp-Param-Zone' => 'b');

$r = $call->(2, \%args, @ok);
is($r->{status}, 200, 'every header matches: 200');
is($r->{json}{result}{content}[0]{text}, 'ok', '... the call ran');
my ($got) = grep { $_->{id} } reverse $s1->received('tools/call');
is(enc($got->{params}{arguments}), enc(\%args),
   '... with the arguments as they were');

$r = $call->(3, \%args, 'mcp-param-region' => 'us-west1',
             'MCP-PARAM-N' => '42.0', 'Mcp-Param-Flag' => 'true',
             'Mcp-Param-Zone' => 'b', 'Mcp-Param-Other' => 'x');
is($r->{status}, 200,
   'header names in any case; 42.0 equals 42; an undeclared header is '
   . 'ignored');

$r = $call->(4, { %args, region => "Hello, \x{4e16}\x{754c}" },
             @ok[2 .. 7], 'Mcp-Param-Region' => main::b64("Hello, \xe4\xb8\x96\xe7\x95\x8c"));
is($r->{status}, 200, 'a Base64 sentinel value is decoded: 200');

$r = $call->(5, { query => 'x' });
is($r->{status}, 200, 'no header parameter in the arguments, no header: 200');

my @bad = (
  [ 'missing', \%args, [ @ok[2 .. 7] ],
    'Header mismatch: the Mcp-Param-Region header is required (the '
    . 'arguments have its value)' ],
  [ 'different', \%args, [ @ok[2 .. 7], 'Mcp-Param-Region' => 'eu' ],
    "Header mismatch: Mcp-Param-Region header value 'eu' does not match "
    . 'the body value' ],
  [ 'extra', { query => 'x' }, [ 'Mcp-Param-Region' => 'us-west1' ],
    'Header mismatch: Mcp-Param-Region is sent but the arguments have no '
    . 'value for it' ],
  [ 'integer', \%args, [ @ok[0, 1, 4 .. 7], 'Mcp-Param-N' => '43' ],
    "Header mismatch: Mcp-Param-N header value '43' does not match the "
    . 'body value' ],
  [ 'not a number', \%args, [ @ok[0, 1, 4 .. 7], 'Mcp-Param-N' => '0x2a' ],
    "Header mismatch: Mcp-Param-N header value '0x2a' does not match the "
    . 'body value' ],
  [ 'boolean', \%args, [ @ok[0 .. 3, 6, 7], 'Mcp-Param-Flag' => 'TRUE' ],
    "Header mismatch: Mcp-Param-Flag header value 'TRUE' does not match "
    . 'the body value' ],
  [ 'nested', \%args, [ @ok[0 .. 5], 'Mcp-Param-Zone' => 'c' ],
    "Header mismatch: Mcp-Param-Zone header value 'c' does not match the "
    . 'body value' ],
  [ 'bad Base64', \%args, [ @ok[2 .. 7],
                            'Mcp-Param-Region' => '=?base64?***?=' ],
    'Header mismatch: Mcp-Param-Region header value has invalid '
    . 'characters' ],
  [ 'non-ASCII', \%args, [ @ok[2 .. 7],
                           'Mcp-Param-Region' => "us-w\xc3\xa9st1" ],
    'Header mismatch: Mcp-Param-Region header value has invalid '
    . 'characters' ],
);
my $n = $s1->received('tools/call');
my $id = 10;
for my $b (@bad) {
    my ($what, $args, $headers, $msg) = @$b;
    $r = $call->($id++, $args, @$headers);
    is($r->{status}, 400, "$what: 400");
    is($r->{json}{error}{code}, -32020, "... -32020");
    is($r->{json}{error}{message}, $msg, '... saying which header');
}
is(scalar $s1->received('tools/call'), $n, 'no refused call reached s1');

# the legacy revisions have no such headers: not checked there
my $sid = session();
$r = mcp(session => $sid, servers => [$s1],
         msg => req(40, 'tools/call', { name => 's1__execute_sql',
                                        arguments => \%args }),
         headers => [ 'Mcp-Param-Region' => 'eu' ]);
is($r->{json}{result}{content}[0]{text}, 'ok',
   'a 2025-11-25 session call: headers not checked');
$s1->disconnect;
--- error_log eval
[
qr/\[warn\] .*server "s1" tool #2 rejected: x-mcp-header is not on a parameter reached through "properties" only/,
qr/\[warn\] .*server "s1" tool #3 rejected: x-mcp-header is on a parameter whose type is not string, integer or boolean/,
qr/\[warn\] .*server "s1" tool #4 rejected: x-mcp-header names a header twice/,
qr/\[warn\] .*server "s1" tool #5 rejected: x-mcp-header is not an HTTP token/,
qr/\[warn\] .*server "s1" tool #6 rejected: x-mcp-header is not a non-empty string/,
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 2: subscriptions/listen: prompts and resources list_changed from the registry, for those who opted in
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $count = sub {
    my ($h, $what) = @_;
    return scalar grep { ($_->{method} // '') eq
                         "notifications/$what/list_changed" }
                  events_of($h->{buf});
};
my $pr = mcp_start(modern('pr', 'subscriptions/listen',
                          { notifications => { promptsListChanged => \1,
                                               resourcesListChanged => \1,
                                               toolsListChanged => \0 } }));
my $tools = mcp_start(modern('t', 'subscriptions/listen',
                             { notifications => { toolsListChanged => \1 } }));
for my $h ($pr, $tools) {
    ok(mcp_poll($h, 5, sub { $_[0] =~ /subscriptions\/acknowledged.*\n\n/s }),
       'acknowledged');
}
my ($ack) = events_of($pr->{buf});
is($main::J->encode($ack->{params}),
   '{"_meta":{"io.modelcontextprotocol/subscriptionId":"pr"},'
   . '"notifications":{"promptsListChanged":true,'
   . '"resourcesListChanged":true}}',
   'prompts and resources honoured, tools not asked for');

# a server comes: every list of the aggregate changes
my $caps = { tools => {}, prompts => { listChanged => \1 },
             resources => { listChanged => \1 } };
my $s1 = up(name => 's1', capabilities => $caps);
my $d = mcp(modern(1, 'server/discover'));
is(enc($d->{json}{result}{capabilities}{prompts}), '{"listChanged":true}',
   'server/discover: prompts with listChanged');
is(enc($d->{json}{result}{capabilities}{resources}), '{"listChanged":true}',
   '... resources too');
my $init = mcp(msg => req(2, 'initialize', { protocolVersion => '2025-11-25',
                                              capabilities => {},
                                              clientInfo => { name => 't',
                                                              version => '1' } }));
is(enc($init->{json}{result}{capabilities}{prompts}), '{}',
   'a legacy initialize: no listChanged (its GET stream carries tools only)');
ok(mcp_poll($pr, 5, sub { $count->({ buf => $_[0] }, 'prompts') >= 1
                          && $count->({ buf => $_[0] }, 'resources') >= 1 }),
   'a server came: prompts and resources list_changed');
ok(mcp_poll($tools, 5, sub { $count->({ buf => $_[0] }, 'tools') >= 1 }),
   '... and tools list_changed where asked for');
is($count->($pr, 'tools'), 0, 'no tools list_changed where not asked for');
is($count->($tools, 'prompts') + $count->($tools, 'resources'), 0,
   'no prompts or resources list_changed where not asked for');
my ($ev) = grep { ($_->{method} // '') eq 'notifications/prompts/list_changed' }
           events_of($pr->{buf});
is_deeply($ev->{params},
          { _meta => { 'io.modelcontextprotocol/subscriptionId' => 'pr' } },
          'the notification carries the subscription id');

# the server says its prompts changed: prompts only
my ($p0, $r0) = ($count->($pr, 'prompts'), $count->($pr, 'resources'));
$s1->notify('notifications/prompts/list_changed');
ok(mcp_poll($pr, 5, sub { $count->({ buf => $_[0] }, 'prompts') > $p0 }),
   'notifications/prompts/list_changed of a server: announced');
mcp_poll($pr, 0.6, sub { 0 });
is($count->($pr, 'resources'), $r0, '... resources not');

($p0, $r0) = ($count->($pr, 'prompts'), $count->($pr, 'resources'));
$s1->notify('notifications/resources/list_changed');
ok(mcp_poll($pr, 5, sub { $count->({ buf => $_[0] }, 'resources') > $r0 }),
   'notifications/resources/list_changed of a server: announced');
mcp_poll($pr, 0.6, sub { 0 });
is($count->($pr, 'prompts'), $p0, '... prompts not');

# a server goes
($p0, $r0) = ($count->($pr, 'prompts'), $count->($pr, 'resources'));
$s1->disconnect;
ok(mcp_poll($pr, 5, sub { $count->({ buf => $_[0] }, 'prompts') > $p0
                          && $count->({ buf => $_[0] }, 'resources') > $r0 }),
   'a server went: prompts and resources list_changed');
ok(!$pr->{eof} && !$tools->{eof}, 'the streams stay open');
close $_->{sock} for $pr, $tools;
--- no_error_log
[alert]
[crit]
[error]



=== TEST 3: a server asks a 2026-07-28 caller for a capability it did not declare: the caller gets 400 + -32021 with requiredCapabilities, the server an error and notifications/cancelled
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s = up(name => 's1', tools => [ tool('ask') ], on_request => sub {
    my ($srv, $m) = @_;
    return undef unless $m->{method} eq 'tools/call';
    push @{ $srv->{calls} }, $m;
    return { noreply => 1 };
});
my @cases = (
    [ 'sampling/createMessage', { messages => [] }, 'sampling',
      { sampling => {} } ],
    [ 'elicitation/create', { mode => 'url', url => 'https://x.test/',
                              message => 'm', elicitationId => 'e' },
      'elicitation (url mode)', { elicitation => { url => {} } } ],
    [ 'roots/list', undef, 'roots', { roots => {} } ],
);
my $id = 0;
for my $c (@cases) {
    my ($method, $params, $cap, $want) = @$c;
    my $n = @{ $s->{calls} || [] };
    my $h = mcp_start(modern('m' . ++$id, 'tools/call',
                             { name => 's1__ask', arguments => {} },
                             capabilities => {}), servers => [$s]);
    ok(mcp_poll($h, 5, sub { @{ $s->{calls} || [] } > $n }),
       "$method: the server holds the call");
    my $call = $s->{calls}[$n];
    my $rid = $s->request($method, $params);
    my $err = $s->wait_response($rid, 5);
    is_deeply($err->{error}, { code => -32601, message => "$method: the "
              . "caller of this call did not declare the $cap capability" },
              '... the server gets an error');
    ok($s->pump_until(sub { grep { $_->{params}{requestId} eq $call->{id} }
                            $s->received('notifications/cancelled') }, 5),
       '... and notifications/cancelled for its call');
    my $r = mcp_finish($h, 5);
    is($r->{status}, 400, '... the caller: 400');
    is($r->{json}{error}{code}, -32021, '... -32021');
    is($r->{json}{error}{message}, 'Missing required client capability: '
       . "server \"s1\" sent $method during the call", '... saying why');
    is_deeply($r->{json}{error}{data}, { requiredCapabilities => $want },
              '... with the capability it needs');
}
$s->disconnect;
--- error_log eval
qr/\[info\] .*call \d+ to server "s1" ends with -32021: it sent sampling\/createMessage, which its caller cannot answer/
--- no_error_log
[warn]
[error]
[alert]
[crit]
