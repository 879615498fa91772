# Resources, prompts and completion of reverse servers through the
# endpoint (t/008-endpoint.t covers tools and the transport): on
# /mcp/<server> resources/*, prompts/* and completion/complete are
# forwarded as they are when the server declared the capability (else
# -32601), and initialize declares them; on the aggregate /mcp the lists
# fan out to every server that declares them and are merged (prompt names
# "<server>__<prompt>", mapped back for prompts/get and completion; URIs
# unchanged, resources/read tries the servers in name order until one
# answers), a failing server is left out, and a client that goes away
# cancels every server's part.  The reverse servers are the scripted ones
# of t/lib/Test/Nginx/ReverseMCP.pm, pumped while a request is in flight.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::MCP;

master_on();
workers(2);

run_tests();

# ------------------------------------------------------------------------
# helpers (test_code runs in package main); the HTTP ones are in
# t/lib/Test/Nginx/MCP.pm
# ------------------------------------------------------------------------

# capabilities of a server with everything
sub all_caps {
    return { tools => { listChanged => \1 },
             resources => { subscribe => \1, listChanged => \1 },
             prompts => { listChanged => \1 }, completions => {} };
}

# on_request from a table: method => result, or sub { ($params, $s, $msg) }
sub answers {
    my (%t) = @_;
    return sub {
        my ($s, $msg) = @_;
        my $a = $t{ $msg->{method} };
        return undef unless defined $a;
        return ref $a eq 'CODE' ? $a->($msg->{params} || {}, $s, $msg) : $a;
    };
}

# the result as raw text (numbers as written)
sub raw_result {
    my ($msg, $text) = @_;
    return { raw => '{"jsonrpc":"2.0","id":' . enc($msg->{id})
                    . ',"result":' . $text . '}' };
}

sub last_received {
    my ($s, $method) = @_;
    my @m = $s->received($method);
    return $m[-1];
}

sub prompt_names { [ map { $_->{name} } @{ $_[0]{json}{result}{prompts}
                                            || [] } ] }

__DATA__

=== TEST 1: /mcp/<server>: forwarded as they are when declared; initialize too
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t;
                       server s3 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
location /mb { reverse_mcp_endpoint a1; reverse_mcp_force_mailbox on; }
--- test_code
my $raw = '{"resources":[{"uri":"file:///a.txt","name":"a","size":1.50,'
          . '"_meta":{"k":[1,2.0]}}],"nextCursor":"n1"}';
my $s1 = up(name => 's1', capabilities => all_caps(),
            on_request => answers(
    'resources/list' => sub { raw_result($_[2], $raw) },
    'resources/templates/list' => { resourceTemplates => [
        { uriTemplate => 'file:///{path}', name => 'files' } ] },
    'resources/read' => sub {
        my ($p) = @_;
        return { error => { code => -32002, message => 'Resource not found',
                            data => { uri => $p->{uri} } } }
            unless $p->{uri} eq 'file:///a.txt';
        return { contents => [ { uri => $p->{uri}, mimeType => 'text/plain',
                                 text => "A \x{e9}" } ] };
    },
    'resources/subscribe' => {},
    'resources/unsubscribe' => {},
    'prompts/list' => { prompts => [ { name => 'greet',
        description => 'Greets', arguments => [ { name => 'who',
                                                  required => \1 } ] } ] },
    'prompts/get' => sub {
        my ($p) = @_;
        return { description => 'Greets', messages => [ { role => 'user',
            content => { type => 'text',
                         text => "Hello $p->{arguments}{who}" } } ] };
    },
    'completion/complete' => { completion => { values => [qw(world wide)],
                                               total => 2, hasMore => \0 } },
));
my $s2 = up(name => 's2');          # tools only
my %init = (capabilities => {}, clientInfo => { name => 't', version => '1' });

# initialize declares what the server declared (less the notifications the
# gateway does not relay)
my $r = mcp(path => '/mcp/s1', msg => req(1, 'initialize',
            { protocolVersion => '2025-06-18', %init }));
is(enc($r->{json}{result}{capabilities}),
   '{"completions":{},"logging":{},"prompts":{},"resources":{},'
   . '"tools":{"listChanged":true}}', '/mcp/s1: capabilities');
my $sid = $r->{headers}{'mcp-session-id'};
$r = mcp(path => '/mcp/s2', msg => req(1, 'initialize',
         { protocolVersion => '2025-06-18', %init }));
is(enc($r->{json}{result}{capabilities}),
   '{"logging":{},"tools":{"listChanged":true}}', '/mcp/s2: tools only');
$r = mcp(path => '/mcp/s3', msg => req(1, 'initialize',
         { protocolVersion => '2025-06-18', %init }));
is(enc($r->{json}{result}{capabilities}),
   '{"logging":{},"tools":{"listChanged":true}}',
   '/mcp/s3 (not connected): tools only');
$r = mcp(path => '/mcp', msg => req(1, 'initialize',
         { protocolVersion => '2025-06-18', %init }));
is(enc($r->{json}{result}{capabilities}),
   '{"completions":{},"logging":{},"prompts":{},"resources":{},'
   . '"tools":{"listChanged":true}}', '/mcp: what any server declares');

# every method reaches s1 with its params as they are; results verbatim
for my $path ('/mcp/s1', '/mb/s1') {
    $r = mcp(path => $path, session => $sid, servers => [ $s1 ],
             msg => req(10, 'resources/list', { cursor => 'c0' }));
    like($r->{body}, qr/"result":\Q$raw\E\}$/,
         "$path resources/list: the result verbatim (1.50, cursor)");
    is_deeply(last_received($s1, 'resources/list')->{params},
              { cursor => 'c0' }, "$path: the params as sent");
}
for my $c (['resources/templates/list', {}, 'resourceTemplates'],
           ['resources/read', { uri => 'file:///a.txt' }, 'contents'],
           ['resources/subscribe', { uri => 'file:///a.txt' }, undef],
           ['resources/unsubscribe', { uri => 'file:///a.txt' }, undef],
           ['prompts/list', undef, 'prompts'],
           ['prompts/get', { name => 'greet',
                             arguments => { who => "w\x{f6}rld" } },
            'messages'],
           ['completion/complete', { ref => { type => 'ref/prompt',
                                              name => 'greet' },
                                     argument => { name => 'who',
                                                   value => 'w' } },
            'completion'])
{
    my ($method, $params, $key) = @$c;
    $r = mcp(path => '/mcp/s1', session => $sid, servers => [ $s1 ],
             msg => req("id-$method", $method, $params));
    is($r->{json}{id}, "id-$method", "$method: the id echoed");
    ok($r->{json}{result} && !$r->{json}{error}, "$method: a result");
    ok(!defined $key || exists $r->{json}{result}{$key},
       "$method: " . ($key // '{}'));
    my $got = last_received($s1, $method);
    is_deeply($got->{params}, $params, "$method: the params as sent");
}
is($r->{json}{result}{completion}{values}[0], 'world', 'completion values');
$r = mcp(path => '/mcp/s1', session => $sid, servers => [ $s1 ],
         msg => req(20, 'prompts/get', { name => 'greet',
                                         arguments => { who => 'you' } }));
is($r->{json}{result}{messages}[0]{content}{text}, 'Hello you',
   'prompts/get: the server\'s own prompt name');

# errors relayed as they are
$r = mcp(path => '/mcp/s1', session => $sid, servers => [ $s1 ],
         msg => req(21, 'resources/read', { uri => 'file:///nope' }));
is_deeply($r->{json}{error}, { code => -32002, message => 'Resource not found',
                               data => { uri => 'file:///nope' } },
          'resources/read: the server\'s error relayed');

# capability-gated: s2 declares none of them
for my $m (qw(resources/list resources/templates/list resources/read
              resources/subscribe prompts/list prompts/get
              completion/complete))
{
    $r = mcp(path => '/mcp/s2', session => $sid, servers => [ $s2 ],
             msg => req(30, $m, { name => 'x', uri => 'file:///a.txt' }));
    is($r->{status}, 200, "/mcp/s2 $m: 200");
    is($r->{json}{error}{code}, -32601, "/mcp/s2 $m: -32601");
    like($r->{json}{error}{message}, qr/^Method not found: \Q$m\E/,
         "/mcp/s2 $m: naming it");
}
ok(!grep({ ($_->{method} // '') =~ m{^(resources|prompts|completion)/} }
         @{ $s2->{received} }), '... and s2 got none of them');
$r = mcp(path => '/mcp/s3', session => $sid,
         msg => req(31, 'prompts/list'));
is($r->{json}{error}{code}, -32001, '/mcp/s3 (not connected): -32001');
like($r->{json}{error}{message}, qr/Server not connected: s3/,
     '... naming it');
$r = mcp(path => '/mcp/s1', session => $sid,
         msg => req(32, 'resources/teleport'));
is($r->{json}{error}{code}, -32601, 'an unknown method: -32601');

# the SSE form: a progress token streams the reply
$r = mcp(path => '/mcp/s1', session => $sid, servers => [ $s1 ],
         msg => req(33, 'resources/read', { uri => 'file:///a.txt',
                                            _meta => { progressToken => 7 } }));
like($r->{headers}{'content-type'}, qr{^text/event-stream},
     'a progress token: SSE');
is($r->{json}{result}{contents}[0]{text}, "A \x{e9}", '... with the result');
$s1->disconnect;
$s2->disconnect;
--- no_error_log
[alert]
[crit]
[error]



=== TEST 2: /mcp: lists merged; prompt names mapped back; reads in turn
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t;
                       server s3 token=t; server s4 token=t;
                       server s5 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
location /dash { reverse_mcp_endpoint a1; reverse_mcp_tool_separator -; }
location /mb { reverse_mcp_endpoint a1; reverse_mcp_force_mailbox on; }
--- test_code
my $prompt = sub {
    return { name => $_[0], description => "prompt $_[0]", @_[1 .. $#_] };
};
my $read = sub {
    my ($mine) = @_;
    return sub {
        my ($p) = @_;
        return { contents => [ { uri => $p->{uri}, text => "from $mine" } ] }
            if $p->{uri} =~ /^\Q$mine\E:/;
        return { error => { code => -32002, message => "$mine: not found" } };
    };
};
# s2 pages its prompts and resources
my $pages = sub {
    my ($key, @items) = @_;
    return sub {
        my ($p) = @_;
        my ($i) = ($p->{cursor} // 'c0') =~ /^c(\d+)$/;
        return { $key => [ $items[$i] ],
                 $i + 1 < @items ? (nextCursor => 'c' . ($i + 1)) : () };
    };
};
# started in an order other than their names'
my $s2 = up(name => 's2', capabilities => all_caps(), on_request => answers(
    'prompts/list' => $pages->('prompts', $prompt->('shared'),
                               $prompt->('p2'), $prompt->('x__y')),
    'prompts/get' => sub { { messages => [ { role => 'user', content => {
        type => 'text', text => "s2 $_[0]{name}" } } ] } },
    'resources/list' => $pages->('resources',
        { uri => 's2:/one', name => 'one' }, { uri => 's2:/two',
                                               name => 'two' }),
    'resources/templates/list' => { resourceTemplates => [
        { uriTemplate => 's2:/{x}', name => 't2' } ] },
    'resources/read' => $read->('s2'),
    'completion/complete' => sub { { completion => { values => [
        "s2 $_[0]{ref}{name}" ] } } },
));
my $s1 = up(name => 's1', capabilities => all_caps(), on_request => answers(
    'prompts/list' => { prompts => [ $prompt->('shared', arguments => [
        { name => 'a', required => \1 } ]) ] },
    'prompts/get' => sub { { messages => [ { role => 'user', content => {
        type => 'text', text => "s1 $_[0]{name}" } } ] } },
    'resources/list' => { resources => [ { uri => 's1:/a', name => 'a',
                                           size => 12345678901234 } ] },
    'resources/templates/list' => { resourceTemplates => [
        { uriTemplate => 's1:/{x}', name => 't1' } ] },
    'resources/read' => $read->('s1'),
    'resources/subscribe' => $read->('s1'),
));
my $s3 = up(name => 's3', capabilities => all_caps(), on_request => answers(
    'prompts/list' => { error => { code => -32603, message => 'broken' } },
    'resources/list' => { resources => { not => 'an array' } },
    'resources/templates/list' => { prompts => [] },
    'resources/read' => $read->('s3'),
));
my $s4 = up(name => 's4');          # tools only
my @all = ($s1, $s2, $s3, $s4);
my $sid = session();

for my $path ('/mcp', '/mb') {
    my $r = mcp(path => $path, session => $sid, servers => \@all,
                msg => req(1, 'prompts/list'));
    is($r->{status}, 200, "$path prompts/list: 200");
    is_deeply(prompt_names($r), [qw(s1__shared s2__shared s2__p2 s2__x__y)],
              "$path prompts/list: every page of every server, by server "
              . 'name, s3 (an error) left out');
    is(enc($r->{json}{result}{prompts}[0]),
       '{"arguments":[{"name":"a","required":true}],'
       . '"description":"prompt shared","name":"s1__shared"}',
       "$path: the prompt object as the server sent it");
    ok(!exists $r->{json}{result}{nextCursor}, "$path: no nextCursor");
}
is(scalar $s2->received('prompts/list'), 6, 's2 was asked for 3 pages, twice');
is_deeply([ map { $_->{params}{cursor} } $s2->received('prompts/list') ],
          [ undef, 'c1', 'c2', undef, 'c1', 'c2' ], '... with its cursors');
ok(!$s4->received('prompts/list'), 's4 (tools only) was not asked');

my $r = mcp(session => $sid, servers => \@all,
            msg => req(2, 'resources/list'));
is_deeply([ map { $_->{uri} } @{ $r->{json}{result}{resources} } ],
          [qw(s1:/a s2:/one s2:/two)],
          'resources/list: merged, URIs unchanged, s3 (no array) left out');
like($r->{body}, qr/"size":12345678901234/, '... items as sent');
$r = mcp(session => $sid, servers => \@all,
         msg => req(3, 'resources/templates/list'));
is_deeply([ map { $_->{uriTemplate} }
            @{ $r->{json}{result}{resourceTemplates} } ],
          [qw(s1:/{x} s2:/{x})],
          'templates: merged, s3 (no resourceTemplates array) left out');
$r = mcp(session => $sid, msg => req(4, 'prompts/list', { cursor => 'x' }));
is($r->{json}{error}{code}, -32602, 'a cursor on the aggregate: -32602');

# prompts/get and completion: the name mapped back
for my $c (['s2__shared', 's2', 'shared'], ['s1__shared', 's1', 'shared'],
           ['s2__x__y', 's2', 'x__y'])
{
    my ($name, $srv, $own) = @$c;
    $r = mcp(session => $sid, servers => \@all,
             msg => req(5, 'prompts/get', { name => $name,
                                            arguments => { a => '1' } }));
    is($r->{json}{result}{messages}[0]{content}{text}, "$srv $own",
       "prompts/get $name: $own of $srv");
}
my ($got) = ($s2->received('prompts/get'))[-1];
is_deeply($got->{params}, { name => 'x__y', arguments => { a => '1' } },
          'the server gets its own name, the arguments as they are');
$r = mcp(path => '/dash', session => $sid, servers => \@all,
         msg => req(6, 'prompts/list'));
is_deeply(prompt_names($r), [qw(s1-shared s2-shared s2-p2 s2-x__y)],
          'separator "-": names');
$r = mcp(path => '/dash', session => $sid, servers => \@all,
         msg => req(7, 'prompts/get', { name => 's2-p2' }));
is($r->{json}{result}{messages}[0]{content}{text}, 's2 p2',
   'separator "-": mapped back');
for my $c (['s4__x', -32602, qr/^Unknown prompt: s4__x$/],
           ['s5__x', -32001, qr/Server not connected: s5/],
           ['nope', -32602, qr/^Unknown prompt: nope$/],
           ['zz__x', -32602, qr/^Unknown prompt/])
{
    my ($name, $code, $re) = @$c;
    $r = mcp(session => $sid, servers => \@all,
             msg => req(8, 'prompts/get', { name => $name }));
    is($r->{json}{error}{code}, $code, "prompts/get $name: $code");
    like($r->{json}{error}{message}, $re, "prompts/get $name: message");
}
$r = mcp(session => $sid, servers => \@all,
         msg => req(9, 'completion/complete', {
             ref => { type => 'ref/prompt', name => 's2__x__y' },
             argument => { name => 'a', value => '' } }));
is_deeply($r->{json}{result}, { completion => { values => [ 's2 x__y' ] } },
          'completion/complete: ref/prompt mapped back');
is_deeply(($s2->received('completion/complete'))[-1]{params}{ref},
          { type => 'ref/prompt', name => 'x__y' }, '... s2 got its name');
$r = mcp(session => $sid, servers => \@all,
         msg => req(10, 'completion/complete', {
             ref => { type => 'ref/prompt', name => 's1__shared' },
             argument => { name => 'a', value => '' } }));
is_deeply($r->{json}{error}, { code => -32601,
                               message => 'Method not found: '
                                          . 'completion/complete' },
          'completion of a prompt of s1: s1\'s own error relayed');

# resources/read: the servers that declare resources, in name order,
# until one answers without an error
for my $c (['s1:/a', 'from s1', 1, 0, 0], ['s2:/one', 'from s2', 1, 1, 0],
           ['s3:/z', 'from s3', 1, 1, 1])
{
    my ($uri, $text, @asked) = @$c;
    my @before = map { scalar $_->received('resources/read') } $s1, $s2, $s3;
    $r = mcp(session => $sid, servers => \@all,
             msg => req(11, 'resources/read', { uri => $uri }));
    is($r->{json}{result}{contents}[0]{text}, $text, "read $uri: $text");
    is_deeply([ map { scalar($all[$_]->received('resources/read'))
                      - $before[$_] } 0 .. 2 ], \@asked,
              "read $uri: servers asked in name order, up to the one");
}
$r = mcp(session => $sid, servers => \@all,
         msg => req(12, 'resources/read', { uri => 'none:/x' }));
is_deeply($r->{json}{error}, { code => -32002, message => 's1: not found' },
          'a URI no server has: the first server\'s error');
$r = mcp(path => '/mb', session => $sid, servers => \@all,
         msg => req(13, 'resources/read', { uri => 's2:/two' }));
is($r->{json}{result}{contents}[0]{text}, 'from s2',
   'through the mailbox too');
$r = mcp(session => $sid, servers => \@all,
         msg => req(14, 'resources/subscribe', { uri => 's1:/a' }));
is($r->{json}{result}{contents}[0]{text}, 'from s1',
   'resources/subscribe goes the same way');
$_->disconnect for @all;
--- error_log eval
[qr/prompts\/list of server "s3" failed, left out of the aggregate: \{"code"/,
 qr/resources\/templates\/list of server "s3" has no "resourceTemplates" array/,
 qr/resources\/list of server "s3" has no "resources" array/]
--- no_error_log
[alert]
[crit]



=== TEST 3: /mcp: -32601 if none declares it; a dead server; cancellation
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s1 token=t; server s2 token=t;
                       server s3 token=t; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $s3 = up(name => 's3');          # tools only
my $sid = session();
for my $m (qw(resources/list prompts/list prompts/get resources/read
              completion/complete))
{
    my $r = mcp(session => $sid, servers => [ $s3 ],
                msg => req(1, $m, { name => 's3__x', uri => 'a:/b' }));
    is($r->{json}{error}{code}, -32601, "$m, no server declares it: -32601");
}

my $hang = 0;
my $s1 = up(name => 's1', capabilities => all_caps(), on_request => answers(
    'prompts/list' => sub {
        return $hang ? { noreply => 1 }
                     : { prompts => [ { name => 'p', description => 'p' } ] };
    },
    'resources/list' => { noreply => 1 },
));
my $s2 = up(name => 's2', capabilities => all_caps(), on_request => answers(
    'prompts/list' => { noreply => 1 },
    'resources/list' => { noreply => 1 },
));
my $calls = sub { my ($s, $m) = @_; scalar $s->received($m) };
my $cancels = sub { scalar $_[0]->received('notifications/cancelled') };

# s2 dies while the aggregate waits for it: the list answers without it
my $h = mcp_start(session => $sid, servers => [ $s1 ],
                  msg => req(2, 'prompts/list'));
ok($s2->pump_until(sub { $calls->($s2, 'prompts/list') }, 5),
   's2 got prompts/list');
$s2->disconnect(1);
my $r = mcp_finish($h, 10);
is($r->{status}, 200, 's2 died: 200');
is_deeply(prompt_names($r), ['s1__p'], '... the list without s2');

# the client goes away: both servers' calls are cancelled
$s2 = up(name => 's2', capabilities => all_caps(), on_request => answers(
    'resources/list' => { noreply => 1 }));
$h = mcp_start(session => $sid, msg => req(3, 'resources/list'));
ok($s1->pump_until(sub { $calls->($s1, 'resources/list') }, 5)
   && $s2->pump_until(sub { $calls->($s2, 'resources/list') }, 5),
   'both servers got resources/list');
close $h->{sock};
ok($s1->pump_until(sub { $cancels->($s1) == 1 }, 5)
   && $s2->pump_until(sub { $cancels->($s2) == 1 }, 5),
   'the client went away: both get notifications/cancelled');
my ($c1) = $s1->received('notifications/cancelled');
is($c1->{params}{requestId}, ($s1->received('resources/list'))[-1]{id},
   '... for the ids the gateway used');

# notifications/cancelled from the client ends the aggregate as well
$hang = 1;
$h = mcp_start(session => $sid, msg => req('c1', 'prompts/list'));
ok($s1->pump_until(sub { $calls->($s1, 'prompts/list') == 2 }, 5),
   's1 got the second prompts/list');
$r = mcp(session => $sid, msg => { jsonrpc => '2.0',
    method => 'notifications/cancelled', params => { requestId => 'c1' } });
is($r->{status}, 202, 'notifications/cancelled: 202');
ok($s1->pump_until(sub { $cancels->($s1) == 2 }, 5),
   '... s1 gets notifications/cancelled');
$r = mcp_finish($h, 5);
is($r->{status}, 202, '... and the POST ends without a response');
$_->disconnect for $s1, $s2, $s3;
--- error_log
cancelled: the client went away
cancelled by the client
--- no_error_log
[alert]
[crit]
