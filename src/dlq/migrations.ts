import type { StoreMigration } from '../store/migrate.js';

/** State of the bus alerts (firing or not, per alert and group), shared by every process. */
export const createBusAlerts: StoreMigration = {
  name: '202611292000_dlq_bus_alerts',
  async up(db) {
    await db.schema
      .createTable('bus_alerts')
      .addColumn('alert', 'text', (col) => col.notNull())
      .addColumn('group_name', 'text', (col) => col.notNull())
      .addColumn('firing', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('value', 'double precision', (col) => col.notNull().defaultTo(0))
      .addColumn('changed_at', 'bigint', (col) => col.notNull())
      .addPrimaryKeyConstraint('bus_alerts_pk', ['alert', 'group_name'])
      .execute();
  },
  async down(db) {
    await db.schema.dropTable('bus_alerts').execute();
  },
};
