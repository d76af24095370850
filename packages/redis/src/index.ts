export { RedisDriver, type RedisDriverOptions } from './driver.js';
export { RedisPresence, type RedisPresenceOptions } from './presence.js';
export { connectRedisRooms, type RedisRooms, type RedisRoomsOptions } from './connect.js';
