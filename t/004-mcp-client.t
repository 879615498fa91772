# The MCP client role of the gateway on each upgraded socket: the
# initialize request it sends, version negotiation, failures and timeouts
# of initialize and tools/list, pagination, tool validation, re-listing on
# notifications/tools/list_changed, answers to the server's requests, log
# notifications, and a client that talks exactly like the seed's Go server
# (gorilla/websocket + mcp-go).

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::WS;
use Test::Nginx::ReverseMCP;
use Cpanel::JSON::XS ();
use Digest::SHA qw(sha1);
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);

master_on();
workers(2);

our $JSON = Cpanel::JSON::XS->new->utf8->canonical->allow_nonref;

run_tests();


# ------------------------------------------------------------------------
# helpers (test_code runs in package main)
# ------------------------------------------------------------------------

sub tool {
    my ($name, %extra) = @_;
    return { name => $name, description => "tool $name",
             inputSchema => { type => 'object' }, %extra };
}

sub agent_entry {
    my ($name) = @_;
    my ($a) = grep { $_->{name} eq ($name // 'a1') }
              @{ status_json()->{agents} };
    return $a;
}

# the status entry of a server (undef when it is not registered)
sub srv_entry {
    my ($name) = @_;
    my $a = agent_entry('a1') or return undef;
    my ($s) = grep { $_->{name} eq $name } @{ $a->{servers} };
    return $s;
}

sub counters { status_json()->{counters} }

sub log_mark { length error_log_since_start() }

sub log_since { substr(error_log_since_start(), $_[0]) }

sub log_has {
    my ($mark, $re, $t) = @_;
    return wait_until(sub { log_since($mark) =~ $re }, $t // 2, 0.05) ? 1 : 0;
}

# JSON round trip: compare what the server sent with what status shows
sub norm { $main::JSON->decode($main::JSON->encode($_[0])) }

sub new_server {
    my (%o) = @_;
    return Test::Nginx::ReverseMCP->new(name => 's1', token => 't1', %o);
}

# connect + handshake + wait until registered; returns the server object
sub registered {
    my ($label, %o) = @_;
    my $s = new_server(%o);
    is($s->connect, 101, "$label: upgraded");
    ok($s->handshake(3), "$label: handshake");
    ok(wait_until(sub { srv_entry($s->{name}) }, 2, 0.02),
       "$label: registered");
    return $s;
}

# the gateway closes the socket with $code/$reason; nothing registered
sub expect_close {
    my ($label, $s, $code, $reason, $t) = @_;
    $s->pump_until(sub { $s->{closed} }, $t // 3);
    is($s->{close_code}, $code, "$label: close code $code");
    if (ref $reason) {
        like($s->{close_reason} // '', $reason, "$label: close reason");
    } else {
        is($s->{close_reason}, $reason, "$label: close reason");
    }
    ok($s->ws->is_eof(1), "$label: socket closed");
    ok(!srv_entry($s->{name}), "$label: not registered");
}

sub close_line {
    my ($server, $code, $reason) = @_;
    return qr/\[warn\] \d+#\d+: \*\d+ reverse_mcp: closing server "$server" of agent "a1" with $code: \Q$reason\E, client: /;
}

sub leave {
    my ($s) = @_;
    $s->close(1000);
    $s->pump_until(sub { $s->{closed} }, 2);
    $s->disconnect;
}

__DATA__

=== TEST 1: the initialize request, initialized, tools/list; the registry entry
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my @tools = (
    { name => 'zeta', description => "Z \x{263a} last",
      inputSchema => { type => 'object',
                       properties => { n => { type => 'integer',
                                              minimum => -1,
                                              maximum => 1.5 } },
                       required => [ 'n' ] },
      annotations => { readOnlyHint => Cpanel::JSON::XS::true() },
      _meta => { x => [ 1, 'two', undef ] } },
    { name => 'alpha', title => 'Alpha', inputSchema => { type => 'object' },
      outputSchema => { type => 'object',
                        properties => { ok => { type => 'boolean' } } } },
    { name => 'Mid.tool-1_x', description => 'mixed case',
      inputSchema => { type => 'object', additionalProperties =>
                                            Cpanel::JSON::XS::false() } },
);
my $caps = { tools => { listChanged => Cpanel::JSON::XS::true() },
             logging => {}, experimental => { foo => { bar => 1 } } };
my $info = { name => 'my-server', version => '2.3.4', title => 'Mine' };

my $s = registered('s1', tools => \@tools, capabilities => $caps,
                   server_info => $info, instructions => 'use it well');

my @rx = @{ $s->{received} };
my $init = $rx[0];
is($init->{method}, 'initialize', 'first message: initialize');
like($init->{id}, qr/^\d+$/, 'initialize has a numeric id');
is($init->{jsonrpc}, '2.0', 'jsonrpc 2.0');
is($init->{params}{protocolVersion}, '2025-06-18', 'asks for 2025-06-18');
is_deeply($init->{params}{capabilities},
          { sampling => {}, elicitation => { form => {}, url => {} },
            roots => {} },
          'client capabilities: what the gateway relays to its callers');
is($init->{params}{clientInfo}{name}, 'ngx_http_reverse_mcp_module',
   'clientInfo.name');
is($init->{params}{clientInfo}{version}, status_json()->{module_version},
   'clientInfo.version is the module version');
is_deeply([ sort keys %{ $init->{params} } ],
          [ qw(capabilities clientInfo protocolVersion) ],
          'initialize params: exactly these members');

is_deeply($rx[1], { jsonrpc => '2.0', method => 'notifications/initialized' },
          'second message: notifications/initialized (no id)');
is($rx[2]{method}, 'tools/list', 'third message: tools/list');
like($rx[2]{id}, qr/^\d+$/, 'tools/list has a numeric id');
isnt($rx[2]{id}, $init->{id}, 'a new id');
ok(!defined $rx[2]{params}{cursor}, 'first page: no cursor');
is(scalar @rx, 3, 'nothing else was sent');
is($s->{init_count}, 1, 'initialize sent once');

my $e = srv_entry('s1');
is_deeply($e->{tools},
          norm([ sort { $a->{name} cmp $b->{name} } @tools ]),
          'exactly the tools, verbatim, sorted by name');
is_deeply([ map { $_->{name} } @{ $e->{tools} } ],
          [ 'Mid.tool-1_x', 'alpha', 'zeta' ], 'sorted bytewise by name');
is($e->{tools_count}, 3, 'tools_count');
is($e->{tools_rejected}, 0, 'tools_rejected');
is($e->{protocol_version}, '2025-06-18', 'protocol_version');
is_deeply($e->{server_info}, norm($info), 'server_info');
is_deeply($e->{capabilities}, norm($caps), 'capabilities');
is($e->{relists}, 0, 'relists');
my @workers = nginx_worker_pids();
is(scalar @workers, 2, 'two workers');
ok((grep { $_ == $e->{owner_pid} } @workers),
   'owner_pid is one of the worker pids');
my $a1 = agent_entry('a1');
is($a1->{servers_count}, 1, 'agent servers_count');
is($a1->{tools_count}, 3, 'agent tools_count');
my $c = counters();
is($c->{registrations}, 1, 'registrations counter');
is($c->{handshakes}, 1, 'handshakes counter');

ok(log_has(0, qr/\[info\] .*reverse_mcp: server "s1" of agent "a1" registered with 3 tool\(s\), protocol 2025-06-18 \(connection \d+\)/),
   'registration logged');

# a second server with an empty tool list
my $t = registered('s2', name => 's2', token => 't2', tools => []);
is_deeply(srv_entry('s2')->{tools}, [], 's2: an empty tool list');
is(srv_entry('s2')->{tools_count}, 0, 's2: tools_count 0');
is_deeply([ map { $_->{name} } @{ agent_entry('a1')->{servers} } ],
          [ 's1', 's2' ], 'servers sorted by name');
leave($_) for $s, $t;
ok(!srv_entry('s1') && !srv_entry('s2'), 'both gone after closing');
--- no_error_log
[warn]
[error]



=== TEST 2: version negotiation and broken initialize answers
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
for my $v ('2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25') {
    my $s = registered("version $v", protocol_version => $v,
                       tools => [ tool('t') ]);
    is(srv_entry('s1')->{protocol_version}, $v,
       "version $v: registered with that version");
    ok(log_has(0, qr/registered with 1 tool\(s\), protocol \Q$v\E /),
       "version $v: logged");
    leave($s);
}

# [ label, answer to initialize (on_request result), code, reason ]
my @bad = (
    [ 'unsupported protocolVersion 1999-01-01',
      { protocolVersion => '1999-01-01', capabilities => { tools => {} },
        serverInfo => { name => 'old', version => '1' } },
      1002, 'unsupported protocolVersion "1999-01-01"' ],
    [ 'protocolVersion missing',
      { capabilities => { tools => {} }, serverInfo => { name => 'x' } },
      1002, 'initialize result has no protocolVersion' ],
    [ 'protocolVersion not a string',
      { protocolVersion => 20250618, capabilities => {} },
      1002, 'initialize result has no protocolVersion' ],
    [ 'capabilities not an object',
      { protocolVersion => '2025-06-18', capabilities => [ 'tools' ] },
      1002, 'initialize capabilities is not an object' ],
    [ 'JSON-RPC error reply',
      { error => { code => -32603, message => 'internal boom' } },
      1002, 'initialize failed: -32603 internal boom' ],
    [ 'error reply without a message',
      { error => { code => -32000 } },
      1002, 'initialize failed: -32000 no message' ],
    [ 'result is an array', { raw => '[1,2]' },
      1002, 'initialize result is not an object' ],
    [ 'result is a string', { raw => '"ok"' },
      1002, 'initialize result is not an object' ],
);

for my $case (@bad) {
    my ($label, $answer, $code, $reason) = @$case;
    my $mark = log_mark();
    my $s = new_server(tools => [ tool('t') ], on_request => sub {
        my ($s, $m) = @_;
        return undef unless $m->{method} eq 'initialize';
        return { raw => qq({"jsonrpc":"2.0","id":$m->{id},"result":$answer->{raw}}) }
            if $answer->{raw};
        return $answer;
    });
    is($s->connect, 101, "$label: upgraded");
    expect_close($label, $s, $code, $reason);
    ok(!$s->received('notifications/initialized')
       && !$s->received('tools/list'),
       "$label: no initialized, no tools/list");
    ok(log_has($mark, close_line('s1', $code, $reason)), "$label: logged");
}
is(counters()->{registrations}, 4, 'only the 4 good versions registered');
is(agent_entry('a1')->{servers_count}, 0, 'nothing registered at the end');

# the gateway keeps serving
my $g = registered('afterwards s2', name => 's2', token => 't2',
                   tools => [ tool('g') ]);
leave($g);



=== TEST 3: handshake timeouts (initialize, tools/list, a later page)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; server s3 token=t3; }
--- config
reverse_mcp_handshake_timeout 1s;
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $t0 = time;
my $no_init = new_server(tools => [ tool('a') ], on_request => sub {
    $_[1]{method} eq 'initialize' ? { noreply => 1 } : undef });
my $no_list = new_server(name => 's2', token => 't2', tools => [ tool('a') ],
    on_request => sub {
        $_[1]{method} eq 'tools/list' ? { noreply => 1 } : undef });
my $no_page2 = new_server(name => 's3', token => 't3', page_size => 1,
    tools => [ tool('a'), tool('b') ], on_request => sub {
        my ($s, $m) = @_;
        return { noreply => 1 }
            if $m->{method} eq 'tools/list' && $m->{params}{cursor};
        return undef;
    });
is($_->connect, 101, "$_->{name}: upgraded") for $no_init, $no_list, $no_page2;

my %closed_at;
while (time < $t0 + 4 && keys %closed_at < 3) {
    for my $s ($no_init, $no_list, $no_page2) {
        next if $closed_at{ $s->{name} };
        $s->pump(0.02);
        $closed_at{ $s->{name} } = time if $s->{closed};
    }
}

for ([ $no_init, 'initialize timed out' ],
     [ $no_list, 'tools/list timed out' ],
     [ $no_page2, 'tools/list timed out' ])
{
    my ($s, $reason) = @$_;
    my $n = $s->{name};
    is($s->{close_code}, 1008, "$n: close 1008");
    is($s->{close_reason}, $reason, "$n: $reason");
    my $after = ($closed_at{$n} // 99) - $t0;
    ok($after > 0.8 && $after < 2.5,
       "$n: closed after the 1 s handshake timeout") or diag($after);
    ok($s->ws->is_eof(1), "$n: socket closed");
    ok(log_has(0, close_line($n, 1008, $reason)), "$n: logged");
}
is(scalar $no_init->received('tools/list'), 0, 's1 got no tools/list');
is(scalar $no_page2->received('tools/list'), 2, 's3 got the second page request');
is(agent_entry('a1')->{servers_count}, 0, 'nothing registered');
is(counters()->{registrations}, 0, 'registrations counter 0');

my $g = registered('afterwards', tools => [ tool('g') ]);
leave($g);



=== TEST 4: tools/list pagination and malformed answers
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my @five = map { tool("tool$_") } 1 .. 5;
my $s = registered('pages', page_size => 2, tools => [ reverse @five ]);
my @lists = $s->received('tools/list');
is(scalar @lists, 3, '5 tools in pages of 2: 3 tools/list requests');
is_deeply([ map { $_->{params}{cursor} } @lists ], [ undef, 'c2', 'c4' ],
          'cursors followed');
my %ids;
$ids{ $_->{id} }++ for @lists;
is(scalar keys %ids, 3, 'each page request has its own id');
my $e = srv_entry('s1');
is($e->{tools_count}, 5, 'all 5 registered');
is_deeply($e->{tools}, norm(\@five), 'all pages, sorted by name');
leave($s);

# nextCursor null and "" end the listing
for my $end (undef, '') {
    my $label = 'nextCursor ' . (defined $end ? '""' : 'null');
    my $x = registered($label, on_request => sub {
        my ($s, $m) = @_;
        return undef unless $m->{method} eq 'tools/list';
        $s->{tools_list_count}++;
        return { tools => [ tool('only') ], nextCursor => $end };
    });
    is(scalar $x->received('tools/list'), 1, "$label: one page");
    is(srv_entry('s1')->{tools_count}, 1, "$label: registered");
    leave($x);
}

# [ label, tools/list answer (result, or { error }), code, reason ]
my @bad = (
    [ 'a repeated cursor',
      { tools => [ tool('r') ], nextCursor => 'same' },
      1002, 'tools/list pagination does not end' ],
    [ 'tools is not an array', { tools => { name => 'x' } },
      1002, 'tools/list result has no "tools" array' ],
    [ 'tools is missing', { nextCursor => 'c1' },
      1002, 'tools/list result has no "tools" array' ],
    [ 'nextCursor is a number', { tools => [ tool('n') ], nextCursor => 2 },
      1002, 'tools/list nextCursor is not a string' ],
    [ 'tools/list error reply',
      { error => { code => -32000, message => 'nope' } },
      1002, 'tools/list failed: -32000 nope' ],
    [ 'result is not an object', { raw => '[]' },
      1002, 'tools/list result is not an object' ],
);

for my $case (@bad) {
    my ($label, $answer, $code, $reason) = @$case;
    my $mark = log_mark();
    my $x = new_server(on_request => sub {
        my ($s, $m) = @_;
        return undef unless $m->{method} eq 'tools/list';
        return { raw => qq({"jsonrpc":"2.0","id":$m->{id},"result":$answer->{raw}}) }
            if $answer->{raw};
        return $answer;
    });
    is($x->connect, 101, "$label: upgraded");
    expect_close($label, $x, $code, $reason);
    ok(log_has($mark, close_line('s1', $code, $reason)), "$label: logged");
    if ($label eq 'a repeated cursor') {
        is_deeply([ map { $_->{params}{cursor} } $x->received('tools/list') ],
                  [ undef, 'same' ], "$label: stopped at the repetition");
    }
}

# no tools capability: registered with 0 tools, no tools/list
my $mark = log_mark();
my $n = new_server(capabilities => { logging => {} },
                   tools => [ tool('hidden') ]);
is($n->connect, 101, 'no tools capability: upgraded');
ok($n->pump_until(sub { $n->{initialized} }, 2),
   'no tools capability: initialized received');
ok(wait_until(sub { srv_entry('s1') }, 2, 0.02),
   'no tools capability: registered');
$n->pump(0.3);
is(scalar $n->received('tools/list'), 0, 'no tools/list was sent');
$e = srv_entry('s1');
is($e->{tools_count}, 0, 'tools_count 0');
is_deeply($e->{tools}, [], 'no tools');
is_deeply($e->{capabilities}, { logging => {} }, 'capabilities kept');
ok(log_has($mark, qr/server "s1" of agent "a1" registered with 0 tool\(s\)/),
   'registration with 0 tools logged');

# no capabilities member at all
my $n2 = new_server(name => 's2', token => 't2', tools => [ tool('hidden') ],
    on_request => sub {
        my ($s, $m) = @_;
        return undef unless $m->{method} eq 'initialize';
        return { protocolVersion => '2025-06-18',
                 serverInfo => { name => 'bare', version => '0' } };
    });
is($n2->connect, 101, 'no capabilities: upgraded');
ok(wait_until(sub { $n2->pump(0.02); srv_entry('s2') }, 2, 0.02),
   'no capabilities: registered');
$n2->pump(0.2);
is(scalar $n2->received('tools/list'), 0, 'no capabilities: no tools/list');
leave($_) for $n, $n2;



=== TEST 5: invalid tools are skipped with a warning and counted
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my @list = (
    [ tool('ok1', description => 'first') ],
    [ { description => 'no name', inputSchema => { type => 'object' } },
      'tool has no string "name"' ],
    [ tool('bad name'), 'tool name has characters outside [A-Za-z0-9_.-]' ],
    [ tool('x' x 129), 'tool name must be 1-128 characters' ],
    [ { name => 'no_schema', description => 'd' },
      'tool "inputSchema" is missing or not an object' ],
    [ tool('str_schema', inputSchema => { type => 'string' }),
      'tool "inputSchema" type is not "object"' ],
    [ tool('num_desc', description => 42),
      'tool "description" is not a string' ],
    [ tool('ok1', description => 'second'), 'duplicate' ],
    [ tool('y' x 128) ],
    [ tool('') , 'tool name must be 1-128 characters' ],
    [ tool(7), 'tool has no string "name"' ],
    [ 'just a string', 'tool is not an object' ],
    [ tool('schema_array', inputSchema => [ 'object' ]),
      'tool "inputSchema" is missing or not an object' ],
    [ tool('a.b-c_D9') ],
    [ tool('ok2') ],
);
my @tools = map { $_->[0] } @list;
my @good = map { $_->[0] } grep { !defined $_->[1] } @list;
my $rejected = grep { defined $_->[1] } @list;

my $s = registered('bad tools', tools => \@tools, page_size => 4);
my $e = srv_entry('s1');
is_deeply([ map { $_->{name} } @{ $e->{tools} } ],
          [ sort map { $_->{name} } @good ], 'the valid tools are registered');
is($e->{tools_count}, scalar @good, 'tools_count');
is($e->{tools_rejected}, $rejected, "tools_rejected $rejected");
my ($ok1) = grep { $_->{name} eq 'ok1' } @{ $e->{tools} };
is($ok1->{description}, 'first', 'the first of two tools named ok1 is kept');
is(agent_entry('a1')->{tools_count}, scalar @good, 'agent tools_count');

my $log = error_log_since_start();
my @numbers;
for my $i (0 .. $#list) {
    my $why = $list[$i][1] // next;
    if ($why eq 'duplicate') {
        like($log, qr/\[warn\] .*reverse_mcp: server "s1" listed tool "ok1" twice, the second is ignored, client: /,
             "tool #$i: duplicate name warned");
        next;
    }
    my $re = qr/\[warn\] .*reverse_mcp: server "s1" tool #(\d+) rejected: \Q$why\E, client: /;
    like($log, $re, "tool #$i: warned: $why");
    push @numbers, $i;
}
my @logged = $log =~ /reverse_mcp: server "s1" tool #(\d+) rejected: /g;
is_deeply(\@logged, \@numbers,
          'rejected tools are numbered by their position in the list');
ok(log_has(0, qr/registered with ${\ scalar @good} tool\(s\)/),
   'registration logged with the valid tools only');
leave($s);



=== TEST 6: notifications/tools/list_changed triggers a re-list
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $s = registered('relist', page_size => 2,
                   tools => [ tool('a1'), tool('a2') ]);
my $e0 = srv_entry('s1');
my $gen0 = agent_entry('a1')->{generation};
is(counters()->{relists}, 0, 'relists counter 0');
is($e0->{relists}, 0, 'server relists 0');

my @new = (tool('a2', description => 'changed'), tool('b1'), tool('b2'));
$s->set_tools(\@new);
my $mark = log_mark();
$s->notify('notifications/tools/list_changed');
ok($s->pump_until(sub { $s->{tools_list_count} >= 2 }, 3),
   'the gateway listed the tools again');
is(scalar $s->received('tools/list'), 3,
   'a second tools/list (2 pages: 3 requests in all)');
is(($s->received('tools/list'))[2]{params}{cursor}, 'c2',
   'the re-list follows the cursor');
ok(wait_until(sub { srv_entry('s1')->{tools_count} == 3 }, 2, 0.02),
   'status shows the new tools');
my $e = srv_entry('s1');
is_deeply($e->{tools}, norm(\@new), 'exactly the new tool set');
cmp_ok(agent_entry('a1')->{generation}, '>', $gen0,
       'the agent generation increased');
is($e->{relists}, 1, 'server relists 1');
is(counters()->{relists}, 1, 'relists counter 1');
is($e->{connection_id}, $e0->{connection_id}, 'same connection');
is($e->{connected_since}, $e0->{connected_since}, 'same connected_since');
is($e->{owner_pid}, $e0->{owner_pid}, 'same owner');
is(counters()->{registrations}, 1, 'no new registration');
ok(log_has($mark, qr/\[info\] .*reverse_mcp: server "s1" changed its tools/),
   'logged: changed its tools');
ok(log_has($mark, qr/\[info\] .*reverse_mcp: server "s1" of agent "a1" now has 3 tool\(s\)/),
   'logged: now has 3 tool(s)');

# a second change: tools removed, generation increases again
my $gen1 = agent_entry('a1')->{generation};
$s->set_tools([ tool('z') ]);
$s->notify('notifications/tools/list_changed');
ok($s->pump_until(sub { $s->{tools_list_count} >= 3 }, 3), 'third listing');
ok(wait_until(sub { srv_entry('s1')->{tools_count} == 1 }, 2, 0.02),
   'status shows the single tool');
is_deeply(srv_entry('s1')->{tools}, [ tool('z') ], 'tool set replaced');
cmp_ok(agent_entry('a1')->{generation}, '>', $gen1, 'generation again');
is(srv_entry('s1')->{relists}, 2, 'server relists 2');

# a failed re-list keeps the tools
$mark = log_mark();
$s->{on_request} = sub {
    $_[1]{method} eq 'tools/list'
        ? { error => { code => -32000, message => 'busy' } } : undef };
$s->notify('notifications/tools/list_changed');
ok($s->pump_until(sub { $s->received('tools/list') == 5 }, 2),
   'failed re-list: tools/list requested');
$s->pump(0.1);
ok(log_has($mark, qr/\[warn\] .*reverse_mcp: server "s1" failed tools\/list, keeping its previous tools/),
   'failed re-list: warned');
$s->pump(0.2);
ok(!$s->{closed}, 'failed re-list: connection kept');
is_deeply(srv_entry('s1')->{tools}, [ tool('z') ],
          'failed re-list: previous tools kept');
leave($s);



=== TEST 7: requests from the server, unknown responses, log notifications
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $s = registered('requests', tools => [ tool('t') ]);

my $id = $s->request('ping');
is_deeply($s->wait_response($id, 2),
          { jsonrpc => '2.0', id => $id, result => {} },
          'ping with a numeric id answered with an empty result');
$s->send_json({ jsonrpc => '2.0', id => "str-\x{e9}", method => 'ping' });
is_deeply($s->wait_response("str-\x{e9}", 2),
          { jsonrpc => '2.0', id => "str-\x{e9}", result => {} },
          'ping with a string id');
$s->send_json({ jsonrpc => '2.0', id => 9007199254740991, method => 'ping',
                params => {} });
is_deeply($s->wait_response(9007199254740991, 2),
          { jsonrpc => '2.0', id => 9007199254740991, result => {} },
          'ping with a large id and params');
$s->send_json({ jsonrpc => '2.0', id => 0, method => 'ping' });
is_deeply($s->wait_response(0, 2),
          { jsonrpc => '2.0', id => 0, result => {} }, 'ping with id 0');

for my $m ('roots/list', 'sampling/createMessage', 'elicitation/create') {
    my $rid = $s->request($m, { x => 1 });
    is_deeply($s->wait_response($rid, 2),
              { jsonrpc => '2.0', id => $rid,
                error => { code => -32600, message => "$m: no call is in "
                           . "flight on this connection, so no client can "
                           . "answer it" } },
              "$m without a call in flight: -32600, saying so");
    ok(log_has(0, qr/\[info\] .*reverse_mcp: server "s1" request "\Q$m\E" not relayed, answering -32600: /),
       "$m: logged");
}
for my $m ('tools/call') {
    my $rid = $s->request($m, { x => 1 });
    is_deeply($s->wait_response($rid, 2),
              { jsonrpc => '2.0', id => $rid,
                error => { code => -32601, message => "Method not found: $m" } },
              "$m: -32601 Method not found: $m");
    ok(log_has(0, qr/\[info\] .*reverse_mcp: server "s1" sent unsupported request "\Q$m\E", answering -32601/),
       "$m: logged");
}
$s->send_json({ jsonrpc => '2.0', id => 'q"1', method => 'x"y' });
is_deeply($s->wait_response('q"1', 2),
          { jsonrpc => '2.0', id => 'q"1',
            error => { code => -32601, message => 'Method not found: x"y' } },
          'a method name with a quote is escaped in the error message');

# responses to requests the gateway did not send
my $mark = log_mark();
$s->send_json({ jsonrpc => '2.0', id => 999, result => {} });
$s->send_json({ jsonrpc => '2.0', id => 'zzz', result => { a => 1 } });
$s->send_json({ jsonrpc => '2.0', id => 998,
                error => { code => -1, message => 'x' } });
ok(log_has($mark, qr/\[warn\] .*reverse_mcp: server "s1" answered a request the gateway did not send \(or no longer waits for\), ignored/),
   'unknown response id: warned');
$id = $s->request('ping');
is_deeply($s->wait_response($id, 2),
          { jsonrpc => '2.0', id => $id, result => {} },
          'the connection is kept after unknown responses');
my @warned = log_since($mark) =~ /answered a request the gateway did not send/g;
is(scalar @warned, 3, 'one warning per unknown response');
ok(!$s->{closed} && srv_entry('s1'), 'still registered');

# notifications/message
$mark = log_mark();
$s->notify('notifications/message',
           { level => 'warning', logger => 'disk', data => 'almost full' });
$s->notify('notifications/message',
           { level => 'error', logger => 'db', data => 'connection lost' });
$s->notify('notifications/message',
           { level => 'info', logger => 'app', data => 'started' });
$s->notify('notifications/message',
           { level => 'notice', logger => 'app', data => 'noticed' });
$s->notify('notifications/message',
           { level => 'debug', logger => 'app', data => 'invisible' });
$s->send_text('{"jsonrpc":"2.0","method":"notifications/message","params":'
              . '{"level":"info","logger":"obj","data":{"b":[1,true,null],'
              . '"a":"x\ny","n":{"m":-1.5}}}}');
$s->notify('notifications/message',
           { level => 'warning', logger => 'ml', data => "line1\nline2\r\nline3" });
$s->notify('notifications/message', { level => 'info', data => 'nologger' });
$id = $s->request('ping');
$s->wait_response($id, 2);

my $pfx = qr/\d+#\d+: \*\d+ reverse_mcp: server "s1" log/;
ok(log_has($mark, qr/\[warn\] $pfx \[warning\] disk: almost full, client: /),
   'warning -> [warn]');
ok(log_has($mark, qr/\[error\] $pfx \[error\] db: connection lost, client: /),
   'error -> [error]');
ok(log_has($mark, qr/\[info\] $pfx \[info\] app: started, client: /),
   'info -> [info]');
ok(log_has($mark, qr/\[notice\] $pfx \[notice\] app: noticed, client: /),
   'notice -> [notice]');
unlike(log_since($mark), qr/invisible/, 'debug is below the log level');
ok(log_has($mark, qr/\[info\] $pfx \[info\] obj: \{"b":\[1,true,null\],"a":"x\\ny","n":\{"m":-1\.5\}\}, client: /),
   'object data logged as JSON on one line');
ok(log_has($mark, qr/\[warn\] $pfx \[warning\] ml: line1 line2  line3, client: /),
   'newlines in data do not split the log line');
unlike(log_since($mark), qr/^line[23]/m, 'no log line starts with the data');
ok(log_has($mark, qr/\[info\] $pfx \[info\] -: nologger, client: /),
   'no logger: "-"');
ok(!$s->{closed} && srv_entry('s1'), 'still registered after the logs');
leave($s);



=== TEST 8: a client that talks like the seed's Go server (gorilla/websocket + mcp-go)
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server reverse_mcp_server_name token=secret-token; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
my $name = 'reverse_mcp_server_name';
my $token = 'secret-token';
my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');

# net/http writes Host, User-Agent, then the header map sorted by key;
# gorilla sets Upgrade, Connection, Sec-WebSocket-Key, Sec-WebSocket-Version
# itself, header.Set() canonicalizes X-MCP-Server-Name to X-Mcp-Server-Name
my $ws = Test::Nginx::WS->connect(
    port => $port, path => "/ws?server_name=$name&token=$token",
    host_header => "127.0.0.1:$port",
    no_upgrade => 1, no_connection => 1, no_key => 1, no_version => 1,
    headers => [
        'User-Agent'            => 'Go-http-client/1.1',
        'Authorization'         => "Bearer $token",
        'Connection'            => 'Upgrade',
        'Sec-WebSocket-Key'     => $key,
        'Sec-WebSocket-Version' => '13',
        'Upgrade'               => 'websocket',
        'X-Mcp-Server-Name'     => $name,
    ]);
is($ws->status, 101, 'Go client: 101');
is($ws->headers->{'sec-websocket-accept'},
   encode_base64(sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), ''),
   'Sec-WebSocket-Accept');
is(lc($ws->headers->{upgrade} // ''), 'websocket', 'Upgrade: websocket');
like($ws->headers->{connection} // '', qr/\bupgrade\b/i,
     'Connection: upgrade');
ok(!exists $ws->headers->{'sec-websocket-protocol'},
   'no Sec-WebSocket-Protocol in the 101');

my $init_result = '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":'
    . '"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":'
    . '"Server to manage a Linux instance","version":"1.0.0"}}}' . "\n";
my $tool_json = '{"annotations":{"readOnlyHint":false,"destructiveHint":true,'
    . '"idempotentHint":false,"openWorldHint":true},"description":"Execute a '
    . 'Linux command with optional working directory","inputSchema":{"type":'
    . '"object","properties":{"command":{"description":"The full shell command '
    . 'to execute","type":"string"},"working_dir":{"description":"Optional '
    . 'working directory where the command should run","type":"string"}},'
    . '"required":["command"]},"name":"exec_cmd"}';
my $list_result = '{"jsonrpc":"2.0","id":%s,"result":{"tools":['
    . $tool_json . ']}}' . "\n";

# the mcp-go stdio server: one response per request, each ending in "\n";
# gorilla answers pings by itself (auto_pong)
my (@got, $done);
my $deadline = time + 3;
while (!$done && time < $deadline) {
    my $m = $ws->recv_message($deadline - time) or last;
    last if $m->{eof} || $m->{opcode} == 8;
    push @got, $m->{payload};
    my $msg = $main::JSON->decode($m->{payload});
    next unless defined $msg->{id};
    if ($msg->{method} eq 'initialize') {
        $ws->send_text(sprintf $init_result, $msg->{id});
    } elsif ($msg->{method} eq 'tools/list') {
        $ws->send_text(sprintf $list_result, $msg->{id});
        $done = 1;
    }
}
ok($done, 'Go client: initialize and tools/list answered');
is(scalar @got, 3, 'three messages from the gateway');
like($got[0], qr/"method":"initialize"/, 'the first is initialize');

ok(wait_until(sub { srv_entry($name) }, 2, 0.02), 'Go client: registered');
my $e = srv_entry($name);
is_deeply([ map { $_->{name} } @{ $e->{tools} } ], [ 'exec_cmd' ],
          'registered with tool exec_cmd');
is_deeply($e->{tools}[0], $main::JSON->decode($tool_json),
          'exec_cmd registered verbatim');
is_deeply($e->{tools}[0]{inputSchema}{required}, [ 'command' ],
          'command is required');
is($e->{protocol_version}, '2025-06-18', 'protocol version');
is_deeply($e->{server_info},
          { name => 'Server to manage a Linux instance', version => '1.0.0' },
          'server info');
is_deeply($e->{capabilities}, { tools => {} }, 'capabilities');

# conn.Close() in Go: no close frame
$ws->close;
ok(wait_until(sub { !srv_entry($name) }, 2, 0.02), 'Go client left: gone');
ok(log_has(0, qr/server "\Q$name\E" of agent "a1" closed the connection without a close frame/),
   'Go client left: logged');
--- no_error_log
[warn]
[error]



=== TEST 9: several messages in one frame, JSON-RPC batches
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t1; server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
--- test_code
# the initialize result and a log notification in one frame
my $s = registered('multi', tools => [ tool('m') ], on_request => sub {
    my ($s, $m) = @_;
    return undef unless $m->{method} eq 'initialize';
    $s->{init_count}++;
    return { raw => $main::JSON->encode({ jsonrpc => '2.0', id => $m->{id},
                 result => { protocolVersion => '2025-06-18',
                             capabilities => { tools => {} },
                             serverInfo => { name => 'multi',
                                             version => '1' } } })
                   . "\n" . '{"jsonrpc":"2.0","method":"notifications/message",'
                   . '"params":{"level":"info","logger":"l","data":"same frame"}}' };
});
ok(log_has(0, qr/\[info\] .*server "s1" log \[info\] l: same frame, client: /),
   'a notification in the same frame as the initialize result');

# newline-delimited requests in one frame
$s->send_text(qq({"jsonrpc":"2.0","id":"a","method":"ping"}\n)
              . qq({"jsonrpc":"2.0","id":"b","method":"roots/list"}\n\n)
              . qq({"jsonrpc":"2.0","id":"c","method":"ping"}\r\n));
is_deeply($s->wait_response('a', 2),
          { jsonrpc => '2.0', id => 'a', result => {} }, 'frame: first');
is_deeply($s->wait_response('b', 2),
          { jsonrpc => '2.0', id => 'b',
            error => { code => -32600, message => 'roots/list: no call is '
                       . 'in flight on this connection, so no client can '
                       . 'answer it' } },
          'frame: second');
is_deeply($s->wait_response('c', 2),
          { jsonrpc => '2.0', id => 'c', result => {} }, 'frame: third (CRLF)');

# a batch
$s->send_text('[{"jsonrpc":"2.0","id":"d","method":"ping"},'
              . '{"jsonrpc":"2.0","method":"notifications/message","params":'
              . '{"level":"warning","logger":"b","data":"in a batch"}},'
              . '{"jsonrpc":"2.0","id":"e","method":"ping"}]');
is_deeply($s->wait_response('d', 2),
          { jsonrpc => '2.0', id => 'd', result => {} }, 'batch: first');
is_deeply($s->wait_response('e', 2),
          { jsonrpc => '2.0', id => 'e', result => {} }, 'batch: second');
ok(log_has(0, qr/\[warn\] .*server "s1" log \[warning\] b: in a batch, client: /),
   'batch: the notification was processed');

# a re-list whose tools/list response comes inside a batch
$s->{on_request} = sub {
    my ($s, $m) = @_;
    return undef unless $m->{method} eq 'tools/list';
    $s->{tools_list_count}++;
    $s->ws->send_text($main::JSON->encode([
        { jsonrpc => '2.0', id => $m->{id},
          result => { tools => [ tool('batched') ] } },
        { jsonrpc => '2.0', id => 'f', method => 'ping' } ]));
    return { noreply => 1 };
};
$s->notify('notifications/tools/list_changed');
ok($s->pump_until(sub { $s->{tools_list_count} >= 2 }, 2), 're-list sent');
is_deeply($s->wait_response('f', 2),
          { jsonrpc => '2.0', id => 'f', result => {} },
          'the request after the response in the batch was answered');
ok(wait_until(sub { (srv_entry('s1')->{tools}[0]{name} // '') eq 'batched' },
              2, 0.02), 'the tools/list response inside a batch was used');
ok(!$s->{closed}, 'connection kept');

# a batch with a non-JSON-RPC element: 1002
my $x = registered('bad batch', name => 's2', token => 't2',
                   tools => [ tool('x') ]);
$x->send_text('[{"jsonrpc":"2.0","id":"g","method":"ping"},{"foo":1}]');
expect_close('bad batch', $x, 1002, 'invalid JSON-RPC 2.0 message');
is_deeply($x->{responses}{g}, { jsonrpc => '2.0', id => 'g', result => {} },
          'bad batch: the element before the bad one was answered');

# a frame whose second line is not JSON: 1007
my $y = registered('bad line', name => 's2', token => 't2',
                   tools => [ tool('y') ]);
$y->send_text(qq({"jsonrpc":"2.0","id":"h","method":"ping"}\nnot json\n));
expect_close('bad line', $y, 1007, qr/^invalid JSON: /);
ok(srv_entry('s1'), 's1 is unaffected');
leave($s);
