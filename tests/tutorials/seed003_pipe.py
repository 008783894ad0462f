# SuperFastPython.com
# example of returning a variable from a process using a pipe
from random import random
from time import sleep
from multiprocessing import Pipe
from multiprocessing import Process

# function to execute in a child process
def task(connection):
    # generate some data
    data = random()
    # block, to simulate computational effort
    print(f'Generated {data}', flush=True)
    sleep(data)
    # return data via pipe
    connection.send(data)

# protect the entry point
if __name__ == '__main__':
    # create the pipe
    conn1, conn2 = Pipe()
    # create a child process process
    process = Process(target=task, args=(conn2,))
    # start the process
    process.start()
    # wait for the return value
    value = conn1.recv()
    # report return value
    print(f'Returned: {value}')
