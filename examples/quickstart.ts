import quiver from '@quiver/fastify';
import { connect, defineMessage, transportsFromInfo } from '@quiver/session';
import { connectWebTransport } from '@quiver/webtransport';
import { connectWebSocket } from '@quiver/websocket';
import Fastify from 'fastify';

// Typed messages: `chat` rides the reliable channel (an ordered stream), `pos` the unreliable one (datagrams).
const Chat = defineMessage<{ from?: string; text: string }>('chat');
const Pos = defineMessage<{ x: number; y: number }>('pos', { channel: 'unreliable' });

// Server: WebTransport (UDP) and WebSocket endpoints on /quiver, metrics on /metrics.
const app = Fastify();
await app.register(quiver, { path: '/quiver', session: { messages: [Chat, Pos] } });
app.quiver.on(Chat, (m, session) => app.quiver.broadcast(Chat, { from: session.user.userId, text: m.text }));
app.quiver.on(Pos, (p, session) => session.send(Pos, { x: p.x * 10, y: p.y * 10 }));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 4433) });
await app.quiverTransports.ready();
const info = await app.quiverTransports.info(); // what GET /quiver/info tells browsers

// Client: WebTransport first (pinned by the development certificate's hash), WebSocket 400 ms later if
// WebTransport has not connected by then.
const connectors = { webtransport: connectWebTransport, websocket: connectWebSocket };
const transports = transportsFromInfo(info, connectors);
const client = await connect(transports[0].url!, { transports });
console.log(`connected over ${client.transport}`);
client.on(Chat, (m) => console.log(`chat from ${m.from}: ${m.text}`));
client.on(Pos, (p) => console.log(`pos echo: ${p.x},${p.y}`));
client.send(Chat, { text: 'hello, quiver' });
for (let i = 1; i <= 3; i++) client.send(Pos, { x: i, y: -i });

setTimeout(async () => {
  console.log(`rtt ${client.rtt.toFixed(2)} ms, server clock ${client.serverTime() - Date.now()} ms ahead`);
  await client.close();
  await app.close();
}, 1000);
