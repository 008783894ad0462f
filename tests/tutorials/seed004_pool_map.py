from multiprocessing import Pool
import os

def compute_squares(num):
    print(f"Process {os.getpid()} calculating square of {num}")
    return num*num

if __name__ == "__main__":
    # Create the Pool object with the number of workers, 4 in this case.
    p = Pool(4)
    # Map the jobs to the individual workers
    result = p.map(compute_squares, range(12))
    # Close the Pool object
    p.close()
    print(f"Result is: {result}")
