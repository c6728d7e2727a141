import SqliteDatabase from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { cachingStatements } from '../../src/store/sqlite-dialect.js';

describe('SQLite store: prepared statement cache', () => {
  const opened: SqliteDatabase.Database[] = [];
  const open = () => {
    const database = new SqliteDatabase(':memory:');
    opened.push(database);
    return database;
  };
  afterEach(() => {
    for (const database of opened.splice(0)) if (database.open) database.close();
  });

  it('prepares a query once and reuses it, keeping the most recently used ones', () => {
    const database = open();
    let prepared = 0;
    const counting = {
      close: () => database.close(),
      prepare: (sql: string) => {
        prepared++;
        return database.prepare(sql);
      },
    };
    const cached = cachingStatements(counting, 2);
    const a = cached.prepare('select 1 as a');
    expect(cached.prepare('select 1 as a')).toBe(a);
    cached.prepare('select 2 as b');
    cached.prepare('select 1 as a'); // a is now the most recent: b goes first
    cached.prepare('select 3 as c');
    expect(prepared).toBe(3);
    expect(cached.prepare('select 1 as a')).toBe(a);
    cached.prepare('select 2 as b');
    expect(prepared).toBe(4);
    expect(a.all([])).toEqual([{ a: 1 }]);
  });

  it('answers from the current schema after the table a cached statement reads has changed', () => {
    const cached = cachingStatements(open());
    cached.prepare('create table t (x integer)').run([]);
    cached.prepare('insert into t (x) values (?)').run([1]);
    const select = cached.prepare('select * from t');
    expect(select.all([])).toEqual([{ x: 1 }]);
    cached.prepare("alter table t add column y text not null default 'z'").run([]);
    expect(cached.prepare('select * from t').all([])).toEqual([{ x: 1, y: 'z' }]);
  });
});
